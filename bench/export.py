"""Benchmark: export a million accepted pairs to Parquet and JSON Lines, against a pandas-in-memory baseline.

    .venv/bin/python bench/export.py                    # 1,000,000 rows, store in /tmp/xinstruct-bench
    .venv/bin/python bench/export.py --rows 20000       # a quick run

The store is generated in DuckDB with SQL from real native paragraphs (../shared/data/web) and real English
instructions (../shared/data/eval), about 1,000 characters a response, with one logged decision and one version per
pair; it is reused when it already holds the requested number of rows. Each measurement runs in its own subprocess and
reports wall time and peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, which includes DuckDB's native memory).
Prints a markdown table with the machine, the date and the load average (the machine is shared: compare CPU seconds
when the load is high).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def _texts() -> tuple[list[dict], list[str]]:
    paragraphs = []
    for path in sorted((SHARED / "web").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            paragraphs.append({"lang": row["lang"], "text": row["text"], "url": row.get("url"), "source": row["source"]})
    instructions = []
    for path in sorted((SHARED / "eval").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            text = row.get("instruction") or row.get("Instruction") or (row.get("turns") or [None])[0]
            if isinstance(text, str) and 10 <= len(text) <= 400:
                instructions.append(text)
    if not paragraphs or not instructions:
        raise SystemExit(f"bench needs real text in {SHARED}/web and {SHARED}/eval")
    return paragraphs, instructions


def generate(db: Path, rows: int) -> float:
    """Fill a fresh store with `rows` accepted (90%) or edited (10%) pairs, in SQL. Returns seconds."""
    import pyarrow as pa

    from xinstruct.store import Store

    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    store = Store(db)
    paragraphs, instructions = _texts()
    t0 = time.perf_counter()

    def fill(tx):
        tx.execute("CREATE TABLE bench_par (i INTEGER, lang VARCHAR, text VARCHAR, url VARCHAR, source VARCHAR)")
        tx.execute("CREATE TABLE bench_ins (i INTEGER, instruction VARCHAR)")
        tx.insert_arrow("bench_par", pa.table({
            "i": list(range(len(paragraphs))), "lang": [p["lang"] for p in paragraphs],
            "text": [p["text"] for p in paragraphs], "url": [p["url"] for p in paragraphs],
            "source": [p["source"] for p in paragraphs]}), ["i", "lang", "text", "url", "source"])
        tx.insert_arrow("bench_ins", pa.table({"i": list(range(len(instructions))), "instruction": instructions}),
                        ["i", "instruction"])
        np_, ni = len(paragraphs), len(instructions)
        # g: the row number; k: a stable hash-like id so that the id order is not the insertion order (as in real data)
        tx.execute(f"""
            CREATE TABLE bench_rows AS
            SELECT g, substr(md5(g::VARCHAR), 1, 16) AS k, g % {np_} AS pi, (g * 7919) % {ni} AS ii
            FROM range(?) t(g)""", [rows])
        tx.execute("""
            INSERT INTO documents (id, content_hash, text, lang_declared, lang_detected, lang, url, source, status)
            SELECT r.k, r.k, p.text || ' (' || r.g || ')', p.lang, p.lang, p.lang, p.url, p.source, 'kept'
            FROM bench_rows r JOIN bench_par p ON p.i = r.pi""")
        tx.execute("""
            INSERT INTO candidates (id, doc_id, lang, instruction, response, gen_status, model_version, label, score,
                                    selected, cluster, review_status, final_instruction, final_response)
            SELECT 'c' || r.k, r.k, p.lang, n.instruction, p.text || ' (' || r.g || ')', 'ok', 'bench-gen-1', 'good',
                   0.5 + (r.g % 500) / 1000.0, true, r.g % 997,
                   CASE WHEN r.g % 10 = 0 THEN 'edited' ELSE 'accepted' END,
                   CASE WHEN r.g % 10 = 0 THEN n.instruction || ' Keep it short.' ELSE n.instruction END,
                   p.text || ' (' || r.g || ')'
            FROM bench_rows r JOIN bench_par p ON p.i = r.pi JOIN bench_ins n ON n.i = r.ii""")
        tx.execute("""
            INSERT INTO candidate_versions (candidate_id, version, stage, instruction, model_version)
            SELECT 'c' || r.k, 1, 'generate', n.instruction, 'bench-gen-1' FROM bench_rows r JOIN bench_ins n ON n.i = r.ii""")
        tx.execute("""
            INSERT INTO decisions (candidate_id, reviewer, action, created_at)
            SELECT 'c' || k, 'reviewer' || (g % 20), CASE WHEN g % 10 = 0 THEN 'edit' ELSE 'accept' END,
                   TIMESTAMP '2026-11-01 08:00:00' + to_seconds(g * 2) FROM bench_rows""")
        for t in ("bench_par", "bench_ins", "bench_rows"):
            tx.execute(f"DROP TABLE {t}")

    store.write(fill, retries=1)
    return time.perf_counter() - t0


def _stored_rows(db: Path) -> int:
    from xinstruct.store import Store

    if not db.exists():
        return -1
    with Store(db).session() as tx:
        return int(tx.scalar("SELECT count(*) FROM candidates WHERE review_status IN ('accepted', 'edited')"))


def worker(kind: str, db: Path, out: Path) -> dict:
    """One measurement (runs in a subprocess)."""
    from xinstruct import export as ex
    from xinstruct.store import Store

    store = Store(db)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = ru.ru_utime + ru.ru_stime
    t0 = time.perf_counter()
    if kind.startswith("xinstruct-"):
        fmt = kind.split("-", 1)[1]
        res = ex.export(store, ex.ExportConfig(out=out, format=fmt, overwrite=True))
        rows, content = res.rows, res.content_hash
        size = sum(p.stat().st_size for p in res.paths)
    else:  # pandas-parquet | pandas-jsonl: the same query into one DataFrame, then pandas writes it
        fmt = kind.split("-", 1)[1]
        cfg = ex.ExportConfig(out=out, format=fmt)
        sql, params = ex.export_query(cfg)
        with store.session() as tx:
            df = tx.df(sql, params)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"data.{fmt}"
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_json(path, orient="records", lines=True, force_ascii=False)
        rows, content, size = len(df), ex._sha256(path), path.stat().st_size
    seconds = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"kind": kind, "seconds": seconds, "cpu_seconds": ru.ru_utime + ru.ru_stime - cpu0,
            "peak_rss_mib": ru.ru_maxrss / 1024,  # KiB -> MiB on Linux
            "rows": rows, "bytes": size, "hash": content, "load": os.getloadavg()[0]}


BASELINE_CAP = 16 * 2**30  # address-space cap of the pandas workers: fail with MemoryError rather than wake the OOM killer


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BASELINE_CAP, BASELINE_CAP))


def run_worker(kind: str, db: Path, out: Path, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--db", str(db), "--out", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_cap_memory if kind.startswith("pandas-") else None)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"kind": kind, "error": lines[-1].strip() if lines else f"exit {proc.returncode}",
                "seconds": time.perf_counter() - t0}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/xinstruct-bench/bench.duckdb"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/xinstruct-bench/out"))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the store even if it has the rows")
    ap.add_argument("--skip-baseline", action="store_true", help="measure xinstruct only")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.db, args.out)))
        return

    import duckdb
    import pandas
    import pyarrow

    args.db.parent.mkdir(parents=True, exist_ok=True)
    gen = None
    if args.regenerate or _stored_rows(args.db) != args.rows:
        print(f"generating {args.rows} accepted pairs in {args.db} ...", file=sys.stderr)
        gen = generate(args.db, args.rows)
        print(f"generated in {gen:.1f} s", file=sys.stderr)
    kinds = ["xinstruct-parquet", "xinstruct-parquet", "xinstruct-jsonl", "xinstruct-hf"]
    if not args.skip_baseline:
        kinds += ["pandas-parquet", "pandas-jsonl"]
    results = []
    for i, kind in enumerate(kinds):
        print(f"measuring {kind} ...", file=sys.stderr)
        r = run_worker(kind, args.db, args.out / f"{i}-{kind}", args.timeout)
        print(f"  {r}", file=sys.stderr)
        results.append(r)

    now = datetime.now(timezone.utc)
    size = args.db.stat().st_size / 2**30
    print(f"Export benchmark, {now:%Y-%m-%d %H:%M} UTC; {machine()}; duckdb {duckdb.__version__}, pandas "
          f"{pandas.__version__}, pyarrow {pyarrow.__version__}; store {args.rows:,} accepted pairs ({size:.2f} GiB file"
          + (f", generated in {gen:.0f} s" if gen is not None else "") + ").\n")
    print("| export | rows | wall (s) | CPU (s) | peak RSS (MiB) | output (MiB) | rows/s | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['kind']} | – | {r.get('seconds', 0):.1f} | – | – | – | failed: {r['error']} | – |")
            continue
        print(f"| {r['kind']} | {r['rows']:,} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
              f"{r['bytes'] / 2**20:.0f} | {r['rows'] / r['seconds']:,.0f} | {r['load']:.1f} |")
    print(f"\nThe pandas workers run under a {BASELINE_CAP / 2**30:.0f} GiB address-space cap (so that a run out of "
          "memory fails here instead of waking the OOM killer on a shared machine).")
    print("\nwall = elapsed time of the export call; CPU = user + system time of the process during it (both cores "
          "count); load avg = the machine's 1-minute load average at its end (other jobs share this machine).")
    parquet = [r for r in results if r.get("kind") == "xinstruct-parquet" and "hash" in r]
    if len(parquet) == 2:
        same = parquet[0]["hash"] == parquet[1]["hash"]
        print(f"\nTwo Parquet exports of the same store: {'byte-identical' if same else 'DIFFERENT'} data files.")


if __name__ == "__main__":
    main()
