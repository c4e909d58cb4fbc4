"""Ingest throughput on a generated multilingual corpus, and bulk insert against row-by-row INSERT, in one run.

    .venv/bin/python bench/ingest.py --docs 200000

The corpus is generated from the words of our own demo corpus (xinstruct/data/demo): each document is a random
sequence of words of one language, 400-1,500 characters, so language ID, the filters and MinHash LSH all do real work
(few documents collide). Prints a markdown table (machine, date) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xinstruct import langid  # noqa: E402
from xinstruct.ingest import IngestConfig, ingest  # noqa: E402
from xinstruct.store import Store  # noqa: E402


def make_corpus(path: Path, n: int, seed: int = 0, files: int = 1) -> list[Path]:
    rng = random.Random(seed)
    vocab = {}
    for f in sorted((ROOT / "xinstruct" / "data" / "demo").glob("*.jsonl")):
        words = []
        for line in f.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("expect") == "keep":
                words += row["text"].split()
        vocab[f.stem] = words
    langs = sorted(vocab)
    paths = [path] if files == 1 else [path.with_name(f"{path.stem}-{k:02d}.jsonl") for k in range(files)]
    outs = [p.open("w", encoding="utf-8") for p in paths]
    for i in range(n):
        lang = langs[i % len(langs)]
        target = rng.randint(400, 1500)
        words, size = [], 0
        while size < target:
            w = rng.choice(vocab[lang])
            words.append(w)
            size += len(w) + 1
        outs[i * files // n].write(json.dumps({"text": " ".join(words), "lang": lang, "url": f"https://bench/{i}"},
                                              ensure_ascii=False) + "\n")
    for out in outs:
        out.close()
    return paths


def bulk_vs_rows(n_rows: int, tmp: Path) -> tuple[float, float]:
    import pyarrow as pa

    rows = [(f"id{i}", f"h{i}", "maandishi " * 80, "sw", "kept") for i in range(n_rows)]
    cols = ["id", "content_hash", "text", "lang", "status"]
    store = Store(tmp / "rows.duckdb")
    start = time.perf_counter()
    with store.session() as tx:
        for r in rows:  # what a naive loader does: one INSERT per document, autocommit
            tx.execute("INSERT INTO documents (id, content_hash, text, lang, status) VALUES (?, ?, ?, ?, ?)", r)
    per_row = (time.perf_counter() - start) / n_rows
    store = Store(tmp / "bulk.duckdb")
    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})
    start = time.perf_counter()
    store.write(lambda tx: tx.insert_arrow("documents", table, cols))
    bulk = (time.perf_counter() - start) / n_rows
    return 1 / per_row, 1 / bulk


def timed_ingest(db: Path, corpus: list[Path], workers: int):
    """Ingest into a fresh store; the clock stops when the file is closed (DuckDB's last checkpoint included)."""
    store = Store(db)
    start = time.perf_counter()
    stats = ingest(store, corpus, IngestConfig(progress=False, workers=workers))
    store.close()
    return stats, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--rows", type=int, default=5_000, help="rows for the bulk vs row-by-row comparison")
    ap.add_argument("--files", type=int, default=1, help="split the corpus into this many files")
    ap.add_argument("--no-single", dest="single", action="store_false", help="skip the one-process comparison run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        corpus = tmp / "corpus.jsonl"
        t = time.perf_counter()
        corpus = make_corpus(corpus, args.docs, files=args.files)
        gen_s = time.perf_counter() - t
        langid.warm()  # model loading (~1 s) out of both timings
        stats, ingest_s = timed_ingest(tmp / "bench.duckdb", corpus, workers=0)
        single_s = timed_ingest(tmp / "single.duckdb", corpus, workers=1)[1] if args.single else None
        rows_per_s, bulk_per_s = bulk_vs_rows(args.rows, tmp)
    print(f"\n## Ingest ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {date.today()})\n")
    print("| measure | value |\n|---|---|")
    print(f"| documents (generated in {gen_s:.0f} s) | {args.docs:,} in {args.files} file(s) |")
    print(f"| kept / dropped | {stats.kept:,} / {sum(stats.dropped.values()):,} {dict(stats.dropped)} |")
    print(f"| end-to-end ingest (read, lang ID, filters, MinHash LSH, write), {os.cpu_count()} worker processes | "
          f"{args.docs / ingest_s:,.0f} docs/s ({ingest_s:.0f} s) |")
    if single_s:
        print(f"| the same, all in one process (`workers=1`) | {args.docs / single_s:,.0f} docs/s ({single_s:.0f} s) |")
    print(f"| row-by-row INSERT ({args.rows:,} rows) | {rows_per_s:,.0f} rows/s |")
    print(f"| bulk Arrow insert ({args.rows:,} rows) | {bulk_per_s:,.0f} rows/s ({bulk_per_s / rows_per_s:,.0f}x) |")


if __name__ == "__main__":
    main()
