"""Server-side latency of the review queue at scale: next_item and record_decision against a naive baseline.

    .venv/bin/python bench/review.py                    # 1,000,000 candidates in a temp store, ~200 calls each
    .venv/bin/python bench/review.py --rows 100000 --calls 100 --db /tmp/bench.duckdb --keep

The store gets `--rows` candidates over the ten languages (documents with short real-looking text; bulk insert via Arrow),
a history of `--history` completed decisions and some live leases. Then one reviewer per call claims the next item
(`next_item`) and decides it (`record_decision`, accept / edit / reject / skip in turn); both are timed. The naive
baseline loads every open candidate of the reviewer's language into pandas and picks in Python, as a first version might.

Two regimes are timed: "warm" (another session holds the database open, as while other reviewers are active) and "cold"
(the file is closed before each call, as after an idle moment: store.py closes it when its last session ends, after
store.IDLE_CLOSE_SECONDS where that grace exists, so the cold calls wait that long first). Prints a markdown table with
machine and date.
"""

from __future__ import annotations


import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, also when imported by a test

import pyarrow as pa  # noqa: E402

from common import cpu_name  # noqa: E402
from xinstruct import review  # noqa: E402
from xinstruct.auth import User, utcnow  # noqa: E402
from xinstruct.langs import LANGS  # noqa: E402
from xinstruct.store import engine as store_module  # noqa: E402
from xinstruct.store import Store, to_json  # noqa: E402

WORDS = {
    "sw": "habari leo mvua kubwa imenyesha katika mji wa Dar es Salaam na wakazi wengi wamekosa makazi".split(),
    "fi": "kaupungin valtuusto päätti eilen uuden kirjaston rakentamisesta keskustaan ensi vuonna".split(),
    "ur": "وزیرخزانہ اسد عمر نے جنوبی اور وسطی ایشیا کے لیے امریکی ڈپٹی سیکریٹری سے ملاقات کی".split(),
    "bn": "দিল্লী দর্বার তৈরীর পূর্বে গেটওয়ে অব ইন্ডিয়া সালে নির্মাণ করা হয়েছিল".split(),
}


def text_for(lang: str, rng: random.Random, n: int = 40) -> str:
    words = WORDS.get(lang, WORDS["sw"])
    return " ".join(rng.choice(words) for _ in range(n))


def build(store: Store, rows: int, history: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    langs = list(LANGS)
    chunk = 200_000
    t0 = time.perf_counter()
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = [f"{start + i:08d}" for i in range(n)]
        lang = [langs[(start + i) % len(langs)] for i in range(n)]
        texts = [text_for(lg, rng) for lg in lang]
        docs = pa.table({
            "id": ["d" + i for i in ids], "content_hash": ["h" + i for i in ids], "text": texts,
            "lang_declared": lang, "lang_detected": lang, "lang": lang,
            "url": [f"https://example.org/{lg}/{i}" for lg, i in zip(lang, ids)],
            "source": ["bench"] * n, "status": ["kept"] * n,
        })
        score = [None if rng.random() < 0.1 else rng.random() for _ in range(n)]
        cands = pa.table({
            "id": ["c" + i for i in ids], "doc_id": ["d" + i for i in ids], "lang": lang,
            "instruction": [f"What does text {i} say?" for i in ids], "response": texts,
            "gen_status": ["rejected" if rng.random() < 0.05 else "ok" for _ in range(n)],
            "model_version": ["bench"] * n,
            "label": [None if s is None else ("good" if s > 0.66 else "flawed" if s > 0.33 else "bad") for s in score],
            "score": score, "selected": [rng.random() < 0.02 for _ in range(n)],
            "cluster_label": [f"topic {rng.randrange(50)}" for _ in range(n)],
        })

        def write(tx, docs=docs, cands=cands):
            tx.insert_arrow("documents", docs, docs.column_names)
            tx.insert_arrow("candidates", cands, cands.column_names)

        store.write(write)
        print(f"  inserted {start + n:,} candidates ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    # A history of completed reviews (accepted), some undone, and live leases of other reviewers.
    picked = rng.sample(range(rows), min(history, rows))
    now = utcnow()
    dec = pa.table({
        "candidate_id": [f"c{i:08d}" for i in picked],
        "reviewer": [f"old{i % 40}" for i in range(len(picked))],
        "action": ["accept"] * len(picked),
        "after": [to_json({"instruction": f"What does text {i:08d} say?", "response": "..."}) for i in picked],
    })

    def history_write(tx):
        tx.insert_arrow("decisions", dec, dec.column_names)
        tx.execute("UPDATE candidates SET review_status = 'accepted' WHERE id IN (SELECT candidate_id FROM decisions)")
        undo = tx.all("SELECT id, candidate_id, reviewer FROM decisions ORDER BY id LIMIT ?", [max(1, history // 50)])
        for did, cid, who in undo:
            tx.execute("INSERT INTO decisions (candidate_id, reviewer, action, after) VALUES (?, ?, 'undo', ?)",
                       [cid, who, to_json({"undoes": did})])
            tx.execute("UPDATE candidates SET review_status = 'pending' WHERE id = ?", [cid])
        live = rng.sample(range(rows), 200)
        tx.executemany("INSERT OR IGNORE INTO leases VALUES (?, ?, ?)",
                       [(f"c{i:08d}", f"old{i % 40}", now + timedelta(minutes=5)) for i in live])

    store.write(history_write)
    print(f"  history: {history:,} decisions ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)


def naive_next(store: Store, user: User):
    """Baseline: load all open candidates of the user's languages into pandas and pick in Python."""
    with store.session() as tx:
        df = tx.df("SELECT id, lang, selected, score, review_status, reviews_needed FROM candidates "
                   f"WHERE gen_status = 'ok' AND lang IN ({', '.join('?' for _ in user.lang_list)})", user.lang_list)
        decided = tx.df("SELECT candidate_id, reviewer FROM decisions")
        leases = tx.df("SELECT candidate_id FROM leases WHERE expires_at > ?", [utcnow()])
    df = df[~df["review_status"].isin(["accepted", "edited", "rejected"])]
    df = df[~df["id"].isin(decided.loc[decided["reviewer"] == user.name, "candidate_id"])]
    df = df[~df["id"].isin(leases["candidate_id"])]
    df = df.assign(dist=(df["score"] - 0.5).abs()).sort_values(["selected", "dist", "id"], ascending=[False, True, True],
                                                                na_position="last")
    return None if df.empty else df.iloc[0]["id"]


def duckdb_version() -> str:
    from importlib.metadata import version

    return version("duckdb")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(store: Store, calls: int, tag: str, idle: float = 0.0) -> dict[str, list[float]]:
    users = [User(f"{tag}{i}", "reviewer", (list(LANGS)[i % 10],)) for i in range(20)]
    actions = ["accept", "edit", "reject", "skip"]
    out: dict[str, list[float]] = {"next_item": [], "record_decision": []}
    for n in range(calls):
        user = users[n % len(users)]
        if idle:
            time.sleep(idle)  # let the store close the file
        t = time.perf_counter()
        item = review.next_item(store, user)
        out["next_item"].append((time.perf_counter() - t) * 1000)
        action = actions[n % 4]
        kw = {"edit": {"instruction": item["instruction"] + " (edited)"}, "reject": {"reason": "poor_quality"}}.get(action, {})
        t = time.perf_counter()
        review.record_decision(store, item["id"], user, action,
                               request_id=review.request_id_for(user, item["id"], action, f"b{n}"), **kw)
        out["record_decision"].append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--baseline-calls", type=int, default=20)
    ap.add_argument("--history", type=int, default=20_000)
    ap.add_argument("--db", type=Path, help="reuse or create this file (default: a temp file)")
    ap.add_argument("--keep", action="store_true", help="keep the database file")
    args = ap.parse_args()

    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="xi-bench-")
        args.db = Path(tmp.name) / "bench.duckdb"
    fresh = not args.db.exists()
    store = Store(args.db)
    if fresh:
        t = time.perf_counter()
        build(store, args.rows, args.history)
        build_s = time.perf_counter() - t
    else:
        build_s = float("nan")
    with store.session() as tx:
        n_cands = tx.scalar("SELECT count(*) FROM candidates")
        n_dec = tx.scalar("SELECT count(*) FROM decisions")
    size_mb = args.db.stat().st_size / 1e6

    rows = []
    with store.session():  # warm: the file stays open, as while other sessions are running
        # The first claim of a language in a process reads that language's order (then refreshed in the background every
        # review.QUEUE_TTL seconds): timed apart, then the measured calls run with the order cached, as in a running app.
        fills = []
        for lang in LANGS:
            with store.session() as tx:
                t = time.perf_counter()
                review.cache.top(tx, lang, review.QUEUE_DEPTH)
                fills.append((time.perf_counter() - t) * 1000)
            warm_user = User(f"warm-{lang}", "reviewer", (lang,))
            item = review.next_item(store, warm_user)
            review.release(store, warm_user, item["id"])
        warm = measure(store, args.calls, "w")
        base = []
        for n in range(args.baseline_calls):
            t = time.perf_counter()
            naive_next(store, User(f"n{n}", "reviewer", (list(LANGS)[n % 10],)))
            base.append((time.perf_counter() - t) * 1000)
    grace = float(getattr(store_module, "IDLE_CLOSE_SECONDS", 0.0))
    cold = measure(store, 12 if grace else max(20, args.calls // 4), "c", idle=grace + 0.3 if grace else 0.0)
    for name, values in [("next_item (warm)", warm["next_item"]), ("record_decision (warm)", warm["record_decision"]),
                         ("naive baseline: pandas pick (warm)", base),
                         ("queue order read, per language (first claim; then background)", fills),
                         ("next_item (cold: file closed before the call)", cold["next_item"]),
                         ("record_decision (right after it: file still open)" if grace else "record_decision (cold)",
                          cold["record_decision"])]:
        rows.append((name, len(values), statistics.median(values), pct(values, 95), max(values)))

    cpu = cpu_name()
    print(f"### Review queue latency, {n_cands:,} candidates, {n_dec:,} decisions\n")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu} · {os.cpu_count()} cores · load average {load} · "
          f"Python {platform.python_version()} · duckdb {duckdb_version()} · file {size_mb:,.0f} MB · "
          f"build {build_s:.0f} s\n")
    print("| operation | calls | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, n, p50, p95, top in rows:
        print(f"| {name} | {n} | {p50:.1f} | {p95:.1f} | {top:.1f} |")
    ok = [name for name, _, _, p95, _ in rows[:2] if p95 <= 50]
    print(f"\nTarget p95 <= 50 ms (warm next_item and record_decision): {'met' if len(ok) == 2 else 'NOT met'}.")
    if tmp is not None and not args.keep:
        tmp.cleanup()
    elif tmp is not None:
        tmp._finalizer.detach()  # keep it
        print(f"\nkept {args.db}", file=sys.stderr)


if __name__ == "__main__":
    main()
