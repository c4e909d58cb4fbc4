"""Build the labelled set's candidates: real web paragraphs of ../shared/data/web through the default pipeline.

Picks PER_LANG paragraphs per language (deterministic, spread over the file's sources, one per document where the
language has enough documents), ingests them into a fresh store with the default settings, generates one instruction
each with the default generator (embedded Gemma 3 270M + shipped backward adapter, greedy) and writes the candidates
the parser kept to `bench/quality/candidates-<tag>.jsonl`: shared row id, document id, split, text sha256 and the
instruction (never the paragraph: it stays in shared/).

The split is by document (sha256 of the shared `doc_id`): `test` is never trained on or tuned against.

    .venv/bin/python bench/quality/sample.py --tag v1           # ~45 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared" / "data" / "web"
LANGS = "bn fi hi id sw ta th tr ur vi".split()
PER_LANG = 46  # a few more than the 40 labelled: ingest and the parser drop some


def split_of(doc_id: str) -> str:
    return "test" if int(hashlib.sha256(doc_id.encode()).hexdigest(), 16) % 2 == 0 else "dev"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def shared_rows(lang: str, shared: Path = SHARED) -> list[dict]:
    path = shared / f"{lang}.jsonl"
    if not path.exists():
        sys.exit(f"{path}: missing; the labelled set is built from ../shared/data/web")
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def pick(rows: list[dict], n: int, seed: str) -> list[dict]:
    """n rows, sources interleaved, at most one per document while documents last."""
    rng = random.Random(seed)
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    for rs in by_source.values():
        rng.shuffle(rs)
    order = list(iter_rr(by_source))
    chosen, docs = [], set()
    for strict in (True, False):
        for r in order:
            if len(chosen) >= n:
                break
            if r in chosen or (strict and r["doc_id"] in docs):
                continue
            chosen.append(r)
            docs.add(r["doc_id"])
    return chosen


def iter_rr(groups: dict[str, list[dict]]):
    """Round-robin over the sources (sorted by name)."""
    lists = [groups[k] for k in sorted(groups)]
    for i in range(max(len(x) for x in lists)):
        for x in lists:
            if i < len(x):
                yield x[i]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--per-lang", type=int, default=PER_LANG)
    ap.add_argument("--db", default=None, help="store to use (default: a temporary one)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dump-only", action="store_true", help="only write the candidates file from --db (while it runs)")
    ap.add_argument("--split", choices=["dev", "test"], help="only paragraphs of this split")
    ap.add_argument("--samples", type=int, default=1, help="drafts per paragraph, best kept by the trained evaluator")
    ap.add_argument("--langs", default=",".join(LANGS))
    ap.add_argument("--max-per-lang", type=int, default=None, help="at most this many paragraphs per language (after --split)")
    ap.add_argument("--model", default=None, help="generator: a model folder or version name (default: the embedded "
                    "default with its shipped adapter)")
    ap.add_argument("--part", default="", help="suffix of the output file (parallel runs over different languages)")
    args = ap.parse_args()

    from xinstruct import generate, ingest
    from xinstruct.store import Store

    langs = args.langs.split(",")
    picked = {lang: pick(shared_rows(lang), args.per_lang, f"xinstruct-quality-{lang}") for lang in LANGS}
    if args.split:
        picked = {lang: [r for r in rows if split_of(r["doc_id"]) == args.split] for lang, rows in picked.items()}
    if args.max_per_lang:
        picked = {lang: rows[: args.max_per_lang] for lang, rows in picked.items()}
    tmp = Path(tempfile.mkdtemp(prefix="xi-quality-"))
    if args.dump_only:
        dump(Store(args.db), picked, args.tag, args.part)
        return
    corpus = tmp / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for lang in langs:
            for r in picked[lang]:
                f.write(json.dumps({"text": r["text"], "url": r.get("url"), "lang": lang}, ensure_ascii=False) + "\n")
    store = Store(args.db or tmp / "quality.duckdb")
    stats = ingest.ingest(store, [corpus], ingest.IngestConfig(progress=False))
    print("ingest:", stats.as_dict(), flush=True)
    model = generate.load_generator(generate.GenerateConfig(model=args.model))
    for lang in langs:
        s = generate.run(store, generate.GenerateConfig(lang=lang, batch_size=args.batch_size, samples=args.samples,
                                                        model=args.model, progress=False), model=model)
        print(lang, {k: s[k] for k in ("generated", "ok", "rejected", "reasons", "docs_per_min")}, flush=True)
    dump(store, picked, args.tag, args.part)


def dump(store, picked: dict[str, list[dict]], tag: str, part: str = "") -> None:
    from xinstruct.textcheck import clean_text

    by_hash = {text_hash(clean_text(r["text"])): r for lang in LANGS for r in picked[lang]}
    with store.session() as tx:
        samples = json.loads(tx.scalar("SELECT any_value(sampling) FROM candidates") or "{}").get("samples", 1)
        rows = tx.all("SELECT c.id, c.lang, c.instruction, c.model_version, d.text FROM candidates c "
                      "JOIN documents d ON d.id = c.doc_id WHERE c.gen_status = 'ok' ORDER BY c.lang, c.id")
    out = HERE / f"candidates-{tag}{part}.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for cid, lang, instruction, model_version, text in rows:
            src = by_hash[text_hash(text)]  # the store holds the text as ingest cleaned it
            f.write(json.dumps({
                "id": f"{tag}-{src['id']}", "row": src["id"], "doc_id": src["doc_id"], "lang": lang,
                "source": src["source"], "split": split_of(src["doc_id"]), "text_sha256": text_hash(src["text"]),
                "instruction": instruction, "generator": model_version + (f" best of {samples}" if samples > 1 else ""),
            }, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} candidates to {out}")


if __name__ == "__main__":
    main()
