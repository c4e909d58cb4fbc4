"""Reliability under load: many simulated reviewers at once on one database file, with the invariants checked after.

    .venv/bin/python bench/reliability.py                          # 20 reviewers, 30 s each for k=1 and k=2
    .venv/bin/python bench/reliability.py --seconds 10 --per-lang 500 --users 40
    .venv/bin/python bench/reliability.py --shared --users 4 --seconds 30    # reviewers + ingest of 50,000 + generate

Each reviewer is a thread with its own User (one or two of three languages) that loops `review.next_item` +
`review.record_decision` (accept 55 %, edit 15 %, reject 15 %, skip 15 %), as the review app's sessions do: threads of
one process sharing the file, each click inside `store.waiting()` as one page run of the app is. After the run every invariant is checked (`check`): every decision that returned is in
the log exactly once under its request id, no candidate has more than k distinct completed reviews, nobody got or
decided an item twice, no lease is left, and each candidate's review_status is `review.derive_state` of its log.
Prints a markdown table (decisions/s, p50/p95/max latency of both calls) with machine and date.

tests/test_reliability.py runs the same simulation for a few seconds.
"""

from __future__ import annotations


import argparse
import hashlib
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, also when imported by a test

from common import cpu_name  # noqa: E402
from xinstruct import review  # noqa: E402
from xinstruct.auth import User  # noqa: E402
from xinstruct.store import engine as store_mod  # noqa: E402
from xinstruct.store import Store  # noqa: E402

LANGS = ("sw", "ur", "bn")
TEXT = {
    "sw": "Tottenham inamfuatilia winga wa Everton na England U21 Anthony Gordon kabla ya dirisha la usajili.",
    "ur": "وزیرخزانہ اسد عمر نے جنوبی اور وسطی ایشیا کے لیے امریکی ڈپٹی اسسٹنٹ سیکریٹری ایلس ویلز سے ملاقات کی",
    "bn": "দিল্লী দর্বার তৈরীর পূর্বে, গেটওয়ে অব ইন্ডিয়া ১৯১১ সালে নির্মাণ করা হয়েছিল।",
}
PAGE_BUDGET = 600.0  # seconds one click may wait for the file in all (the app: XINSTRUCT_BUSY_TIMEOUT per page run)
ACTIONS = (("accept", 0.55), ("edit", 0.15), ("reject", 0.15), ("skip", 0.15))
COMPLETING = ("accept", "edit", "reject")


def fill(store: Store, per_lang: int, langs=LANGS, seed: int = 1) -> list[str]:
    """`per_lang` candidates in each language (documents included), bulk inserted; returns their ids."""
    rng = random.Random(seed)
    docs, cands, ids = [], [], []
    for lang in langs:
        for i in range(per_lang):
            text = f"{TEXT[lang]} ({i})"
            doc_id = hashlib.sha256(f"{lang}:{i}".encode()).hexdigest()[:16]
            cid = "c" + doc_id
            score = rng.random()
            docs.append([doc_id, doc_id, text, lang, lang, lang, "bench", "kept"])
            cands.append([cid, doc_id, lang, f"What does report {lang}-{i} say?", text, "ok", "bench",
                          "good" if score > 0.6 else "flawed", score, rng.random() < 0.1])
            ids.append(cid)

    doc_cols = ["id", "content_hash", "text", "lang_declared", "lang_detected", "lang", "source", "status"]
    cand_cols = ["id", "doc_id", "lang", "instruction", "response", "gen_status", "model_version", "label", "score",
                 "selected"]
    store.write(lambda tx: (tx.insert_arrow("documents", _table(doc_cols, docs), doc_cols),
                            tx.insert_arrow("candidates", _table(cand_cols, cands), cand_cols)))
    return ids


def _table(cols: list[str], rows: list[list]):
    """Rows as a pyarrow Table, for a bulk insert (executemany inserts row by row: minutes on a busy machine)."""
    import pyarrow as pa

    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})


def reviewers(n: int, langs=LANGS) -> list[User]:
    """n reviewers, each its own User: one language each, every fifth also reviews the next language."""
    users = []
    for i in range(n):
        mine = [langs[i % len(langs)]]
        if i % 5 == 0:
            mine.append(langs[(i + 1) % len(langs)])
        users.append(User(f"rev{i:02d}", "reviewer", tuple(mine)))
    return users


def set_k(store: Store, k: int, langs=LANGS) -> None:
    curator = User("bench-curator", "curator")
    for lang in langs:
        review.set_k(store, lang, k, curator)


@dataclass
class Decision:
    reviewer: str
    candidate_id: str
    action: str
    request_id: str
    decision_id: int


@dataclass
class LoadResult:
    seconds: float = 0.0
    decisions: list[Decision] = field(default_factory=list)
    claims: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    next_ms: list[float] = field(default_factory=list)
    decide_ms: list[float] = field(default_factory=list)
    click_ms: list[float] = field(default_factory=list)  # next_item + record_decision: what one click costs
    errors: list[str] = field(default_factory=list)
    emptied: int = 0  # reviewers whose queue ran empty before the deadline

    @property
    def rate(self) -> float:
        return len(self.decisions) / self.seconds if self.seconds else 0.0


def edited_text(item: dict) -> str:
    return f"{item['instruction']} (edited)"  # the same edit for everyone: two such edits agree


def simulate(store: Store, users: list[User], seconds: float, *, seed: int = 0, tag: str = "load",
             actions=ACTIONS, think: float = 0.0, until: threading.Event | None = None) -> LoadResult:
    """Every user a thread looping next_item + record_decision until `seconds` have passed (or `until` is set) or their
    queue is empty, pausing `think` seconds (±50 %) between clicks. A claimed item is always decided (the deadline is
    checked before claiming), so no lease should be left."""
    res = LoadResult()
    lock = threading.Lock()
    names, weights = zip(*actions)
    start = threading.Barrier(len(users))
    reasons = [r for r in review.REJECT_REASONS if r != "other"]

    def work(user: User, rng: random.Random) -> None:
        try:
            start.wait()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not (until is not None and until.is_set()):
                if think:
                    time.sleep(think * (0.5 + rng.random()))
                with store_mod.waiting(PAGE_BUDGET):  # one click is one page run of the app (app.py)
                    t0 = time.perf_counter()
                    item = review.next_item(store, user)
                    t1 = time.perf_counter()
                    with lock:
                        res.next_ms.append((t1 - t0) * 1000)
                    if item is None:
                        with lock:
                            res.emptied += 1
                        return
                    with lock:
                        res.claims[user.name].append(item["id"])
                    action = rng.choices(names, weights)[0]
                    kw = {"edit": {"instruction": edited_text(item)},
                          "reject": {"reason": rng.choice(reasons)}}.get(action, {})
                    rid = review.request_id_for(user, item["id"], action, tag)
                    t2 = time.perf_counter()
                    did = review.record_decision(store, item["id"], user, action, request_id=rid, **kw)
                    t3 = time.perf_counter()
                with lock:
                    res.decide_ms.append((t3 - t2) * 1000)
                    res.click_ms.append((t1 - t0 + t3 - t2) * 1000)
                    res.decisions.append(Decision(user.name, item["id"], action, rid, did))
        except BaseException as exc:  # noqa: BLE001 (reported in the result)
            with lock:
                res.errors.append(f"{user.name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(u, random.Random(f"{seed}:{u.name}")), name=u.name) for u in users]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 120)
    res.seconds = time.perf_counter() - t
    if any(th.is_alive() for th in threads):
        res.errors.append("a reviewer thread did not finish within the deadline + 120 s")
    return res


def check_state(store: Store, k: int | None = None) -> tuple[list[dict], Counter]:
    """The invariants of the log itself: nobody decided an item twice, no candidate has more completed reviews than
    its k, and each candidate's review_status / final texts are `derive_state` of its log. Returns (log, statuses)."""
    with store.session() as tx:
        log = tx.dicts("SELECT id, request_id, candidate_id, reviewer, action, after, reason FROM decisions "
                       "ORDER BY id")
        cands = tx.dicts("SELECT id, lang, reviews_needed, review_status, final_instruction, final_response "
                         "FROM candidates")
        ks = review.k_settings(tx)
    pairs = Counter((d["reviewer"], d["candidate_id"]) for d in log)
    assert max(pairs.values(), default=0) <= 1, [p for p, n in pairs.items() if n > 1][:3]
    logs: dict[str, list[dict]] = defaultdict(list)
    for d in log:
        logs[d["candidate_id"]].append(d)
    statuses: Counter = Counter()
    for c in cands:
        cl = logs.get(c["id"], [])
        kk = review.k_for(c["lang"], c["reviews_needed"], ks)
        assert k is None or kk == k
        completed = {d["reviewer"] for d in review.effective_decisions(cl) if d["action"] in COMPLETING}
        assert len(completed) <= kk, f"{c['id']} decided by {len(completed)} reviewers with k={kk}"
        state = review.derive_state(cl, kk)
        assert (c["review_status"], c["final_instruction"], c["final_response"]) == (
            state["review_status"], state["final_instruction"], state["final_response"]), (c, cl)
        statuses[c["review_status"]] += 1
    return log, statuses


def check(store: Store, res: LoadResult, k: int, *, leases_left: bool = False) -> dict[str, int]:
    """Assert every invariant after a run (check_state, and: every decision that returned is in the log exactly once,
    nobody was given an item twice, no lease left); return a few counts for the report."""
    assert not res.errors, res.errors[:5]
    log, statuses = check_state(store, k)
    by_rid: dict[str, list[dict]] = defaultdict(list)
    for d in log:
        by_rid[d["request_id"]].append(d)
    for dec in res.decisions:  # zero lost decisions
        rows = by_rid.get(dec.request_id, [])
        assert len(rows) == 1, f"{dec.request_id} is in the log {len(rows)} times"
        row = rows[0]
        assert (row["id"], row["candidate_id"], row["reviewer"], row["action"]) == (
            dec.decision_id, dec.candidate_id, dec.reviewer, dec.action), (row, dec)
    assert len(log) == len(res.decisions), f"{len(log)} decisions in the log, {len(res.decisions)} returned"
    for name, got in res.claims.items():
        twice = [c for c, n in Counter(got).items() if n > 1]
        assert not twice, f"{name} was given {twice[:3]} more than once"
    if not leases_left:
        with store.session() as tx:
            leases = tx.scalar("SELECT count(*) FROM leases")
        assert leases == 0, f"{leases} leases left after every claim was decided"
    return {"decisions": len(log), **{f"status:{s}": n for s, n in sorted(statuses.items())}}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))]


def machine() -> str:
    cpu = cpu_name()
    try:
        load = "load average %.1f" % os.getloadavg()[0]
    except OSError:
        load = ""
    return f"{cpu} · {os.cpu_count()} cores · Python {platform.python_version()} · {load}"


# ---------------------------------------------------------------------------------------------------------------------
# Reviewers while pipeline jobs write to the same file (--shared)
# ---------------------------------------------------------------------------------------------------------------------
GEN_TEXT = "Habari za soko namba {i}: bei ya mchele imepanda tena katika soko kuu la mji wetu wiki hii. " * 4


def add_pending_docs(store: Store, n: int) -> None:
    """n kept Swahili documents without a candidate: work for a generate run."""
    rows = [[f"gen{i:06d}", f"gen{i:06d}", GEN_TEXT.format(i=i), "sw", "sw", "sw", "bench", "kept"] for i in range(n)]
    cols = ["id", "content_hash", "text", "lang_declared", "lang_detected", "lang", "source", "status"]
    store.write(lambda tx: tx.insert_arrow("documents", _table(cols, rows), cols))


def pipeline_role(role: str, db: str, corpus: str | None, sleep: float, batch: int) -> None:
    """A pipeline job in a process of its own (started by shared_run): a real ingest of `corpus`, or a generate run
    whose model is a fake that sleeps `sleep` s per batch (the store writes are generate's own)."""
    import json

    store = Store(db, busy_timeout=600)
    if role == "ingest":
        from xinstruct.ingest import IngestConfig, ingest

        print("READY", flush=True)
        t = time.perf_counter()
        stats = ingest(store, [corpus], IngestConfig(progress=False))
        print("FINISHED " + json.dumps({"seconds": time.perf_counter() - t, "read": stats.read, "kept": stats.kept,
                                        **{f"hold_{k}": v for k, v in store_mod.HOLDS.items()}}), flush=True)
    else:
        from xinstruct import generate, langid
        from xinstruct.models.fake import FakeModel

        class Slow(FakeModel):
            def generate(self, prompts, params):
                time.sleep(sleep)
                return super().generate(prompts, params)

        langid.detect(["Summarize the market report for a reader."])
        model = Slow("fake-gen", generate_fn=lambda p: "Summarize the market report in this text for a reader.")
        import signal

        def stop(*_):
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)
        print("READY", flush=True)
        try:
            generate.run(store, generate.GenerateConfig(batch_size=batch, progress=False), model=model)
        finally:
            print("FINISHED " + json.dumps({f"hold_{k}": v for k, v in store_mod.HOLDS.items()}), flush=True)


def _start(role: str, db: Path, corpus: Path | None, sleep: float, batch: int):
    import subprocess

    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--db", str(db), "--gen-sleep", str(sleep),
           "--gen-batch", str(batch)] + (["--corpus", str(corpus)] if corpus else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if line != "READY":
        raise RuntimeError(f"{role} did not start: {line!r}")
    return proc


def click_stats(res: LoadResult) -> str:
    c = res.click_ms
    return (f"{len(c)} | {statistics.median(c):.0f} / {pct(c, 95):.0f} / {max(c):.0f} | "
            f"{sum(x > 1000 for x in c)} | {sum(x > 3000 for x in c)}")


def shared_run(args) -> None:
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ingest import make_corpus  # bench/ingest.py's generated multilingual corpus

    users = reviewers(args.users)
    with tempfile.TemporaryDirectory(prefix="xi-shared-") as tmp:
        tmp = Path(tmp)
        db = tmp / "shared.duckdb"
        store = Store(db)
        fill(store, args.per_lang)
        add_pending_docs(store, 2000)
        (corpus,) = make_corpus(tmp / "corpus.jsonl", args.docs, seed=3)
        load_before = os.getloadavg()[0]
        base = simulate(store, users, args.seconds, tag="alone", think=args.think)
        store.close()
        gen = _start("generate", db, None, args.gen_sleep, args.gen_batch)
        ing = _start("ingest", db, corpus, 0, 0)
        done = threading.Event()
        out: dict = {}

        def watch() -> None:
            for line in ing.stdout:
                if line.startswith("FINISHED "):
                    out.update(json.loads(line[9:]))
            ing.wait()
            done.set()

        threading.Thread(target=watch, daemon=True).start()
        loaded = simulate(store, users, args.max_shared, tag="shared", think=args.think, until=done)
        stopped = ing.poll() is None  # --max-shared ran out before the ingest finished
        if stopped:
            ing.terminate()
            ing.wait(120)
        gen.terminate()
        gen_out = gen.communicate(timeout=60)[0]
        gen_holds = next((json.loads(x[9:]) for x in gen_out.splitlines() if x.startswith("FINISHED ")), {})
        load_after = os.getloadavg()[0]
        both = LoadResult(decisions=base.decisions + loaded.decisions)
        for res in (base, loaded):
            for name, ids in res.claims.items():
                both.claims[name] += ids
        try:
            check(store, both, 1)  # nothing lost or doubled on the reviewers' side
            invariants = "all hold"
        except AssertionError as exc:
            invariants = f"VIOLATED: {str(exc)[:400]}"
        with store.session() as tx:
            generated = tx.scalar("SELECT count(*) FROM candidates WHERE model_version = 'fake-gen'")
            ingested = tx.scalar("SELECT count(*) FROM documents WHERE source = 'corpus.jsonl'")
        errors = base.errors + loaded.errors
    print(f"### Reviewer clicks while pipeline jobs share the file: {args.users} reviewers (threads of one process, "
          f"{args.think:.1f} s ±50 % between clicks), a real ingest of {args.docs:,} documents and a generate run "
          f"(fake model, {args.gen_sleep} s per batch of {args.gen_batch}) in processes of their own\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {machine()} (load average {load_before:.1f} before, "
          f"{load_after:.1f} after)\n")
    print("| run | seconds | clicks | click (next item + decision) p50 / p95 / max ms | clicks > 1 s | clicks > 3 s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| reviewers alone (baseline) | {base.seconds:.0f} | {click_stats(base)} |")
    print(f"| with ingest + generate | {loaded.seconds:.0f} | {click_stats(loaded)} |")
    if stopped:
        print(f"\nIngest STOPPED after {loaded.seconds:.0f} s (--max-shared): {ingested:,} of {args.docs:,} documents "
              f"stored by then ({ingested / max(loaded.seconds, 1e-9):,.0f} docs/s while sharing); generate wrote "
              f"{generated:,} candidates meanwhile.")
    print(f"\nIngest: {out.get('read', 0):,} documents read, {out.get('kept', 0):,} kept in "
          f"{out.get('seconds', 0):.0f} s "
          f"({out.get('read', 0) / max(out.get('seconds', 1), 1e-9):,.0f} docs/s while sharing); generate wrote "
          f"{generated:,} candidates meanwhile.")
    print(f"\nInvariants of the decision log after both runs: {invariants}.")
    print(f"\nLongest session of each pipeline process while another process waited for the file: ingest "
          f"{out.get('hold_longest', float('nan')):.2f} s ({out.get('hold_while_waited', 0)} sessions over "
          f"{store_mod.HOLD_NOTE_SECONDS} s), generate {gen_holds.get('hold_longest', float('nan')):.2f} s "
          f"({gen_holds.get('hold_while_waited', 0)}); the reviewers' process {store_mod.HOLDS['longest']:.2f} s "
          f"({store_mod.HOLDS['while_waited']}).")
    if errors:
        print("\nERRORS: " + "; ".join(errors[:5]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each run (k=1, then k=2)")
    ap.add_argument("--users", type=int, default=20, help="simulated reviewers (threads)")
    ap.add_argument("--per-lang", type=int, default=2000, help="candidates per language (three languages)")
    ap.add_argument("--ks", default="1,2", help="reviews needed per item, one run each")
    ap.add_argument("--shared", action="store_true", help="reviewers while a real ingest and a generate run write "
                    "to the same file (baseline: the reviewers alone, same run); --users, --per-lang, --seconds")
    ap.add_argument("--docs", type=int, default=50_000, help="--shared: documents the ingest reads")
    ap.add_argument("--max-shared", type=float, default=3600.0, help="--shared: stop the reviewers (and the ingest, if "
                    "it still runs) after this many seconds")
    ap.add_argument("--think", type=float, default=1.0, help="--shared: seconds between one reviewer's clicks")
    ap.add_argument("--gen-sleep", type=float, default=0.2, help="--shared: the fake model's seconds per batch")
    ap.add_argument("--gen-batch", type=int, default=8, help="--shared: generate's documents per batch")
    ap.add_argument("--role", choices=["ingest", "generate"], help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        pipeline_role(args.role, args.db, args.corpus, args.gen_sleep, args.gen_batch)
        return
    if args.shared:
        shared_run(args)
        return

    rows = []
    for k in [int(x) for x in args.ks.split(",")]:
        with tempfile.TemporaryDirectory(prefix="xi-rel-") as tmp:
            store = Store(Path(tmp) / "load.duckdb")
            fill(store, args.per_lang)
            set_k(store, k)
            res = simulate(store, reviewers(args.users), args.seconds, tag=f"bench-k{k}")
            counts = check(store, res, k)
            rows.append((k, res, counts))
            print(f"k={k}: {counts}", file=sys.stderr)
    print(f"### Reliability under load: {args.users} simulated reviewers (threads), one DuckDB file, "
          f"{args.per_lang:,} candidates in each of {', '.join(LANGS)}\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {machine()}\n")
    print("| k | seconds | decisions | decisions/s | next_item p50 / p95 / max ms | record_decision p50 / p95 / max ms "
          "| invariants |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for k, res, counts in rows:
        print(f"| {k} | {res.seconds:.1f} | {len(res.decisions)} | {res.rate:.1f} | "
              f"{statistics.median(res.next_ms):.0f} / {pct(res.next_ms, 95):.0f} / {max(res.next_ms):.0f} | "
              f"{statistics.median(res.decide_ms):.0f} / {pct(res.decide_ms, 95):.0f} / {max(res.decide_ms):.0f} | "
              "all hold (0 lost, <= k reviewers, none twice, state = derive_state) |")


if __name__ == "__main__":
    main()
