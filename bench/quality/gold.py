"""More training pairs for the generator: careful readers write the instruction for dev-split paragraphs no draft was
labelled for (issue 14: the generator's in-domain training data was 212 corrected drafts).

    .venv/bin/python bench/quality/gold.py todo --per-lang 80   # bench/out/quality/gold-todo/<lang>.jsonl for the readers
    .venv/bin/python bench/quality/gold.py check                # the readers' files, validated against shared/
    .venv/bin/python bench/quality/gold.py train                # bench/out/quality/generator-train-gold.jsonl (seed format)

Readers write `bench/quality/labels/<lang>.gold.jsonl`, one object per paragraph (GUIDE.md, "Writing instructions for
paragraphs"): {"row", "text_sha256", "gold" (null when the paragraph is unusable as an answer), "note", "judge"}.
Only dev-split documents are offered (sample.split_of); the test split is never written for.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sample import LANGS, SHARED, pick, shared_rows, split_of, text_hash  # noqa: E402

OUT = HERE.parents[0] / "out" / "quality"


def labelled_rows() -> set[str]:
    """Shared row ids that already have a labelled draft (any tag)."""
    rows = set()
    for path in HERE.glob("candidates-*.jsonl"):
        rows |= {json.loads(x)["row"] for x in path.open(encoding="utf-8") if x.strip()}
    return rows


def todo(lang: str, n: int) -> list[dict]:
    """Up to n dev paragraphs of `lang` with neither a labelled draft nor a written instruction yet."""
    done = labelled_rows() | {g["row"] for g in gold_records(lang)}
    rows = [r for r in shared_rows(lang) if split_of(r["doc_id"]) == "dev" and r["id"] not in done]
    return pick(rows, n, f"xinstruct-gold-{lang}") if rows else []


def gold_records(lang: str) -> list[dict]:
    path = HERE / "labels" / f"{lang}.gold.jsonl"
    return [json.loads(x) for x in path.open(encoding="utf-8") if x.strip()] if path.exists() else []


def train_rows(shared: Path = SHARED) -> list[dict]:
    """Seed-format pairs (paragraph, reader's instruction) for `xinstruct train generator`, checked against shared/:
    each row must be there with the text it was written for, and of a dev-split document."""
    out = []
    for lang in LANGS:
        by_id = {r["id"]: r for r in shared_rows(lang, shared)}
        for i, g in enumerate(gold_records(lang), 1):
            src = by_id.get(g["row"])
            where = f"labels/{lang}.gold.jsonl line {i}"
            if src is None or text_hash(src["text"]) != g["text_sha256"]:
                raise SystemExit(f"{where}: row {g['row']} is not in shared/ with that text hash")
            if split_of(src["doc_id"]) != "dev":
                raise SystemExit(f"{where}: row {g['row']} is a test-split document")
            if g.get("gold"):
                out.append({"id": f"gold-{g['row']}", "lang": lang, "instruction": g["gold"], "response": src["text"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["todo", "check", "train"])
    ap.add_argument("--per-lang", type=int, default=80)
    args = ap.parse_args()
    if args.what == "todo":
        (OUT / "gold-todo").mkdir(parents=True, exist_ok=True)
        for lang in LANGS:
            rows = todo(lang, args.per_lang)
            path = OUT / "gold-todo" / f"{lang}.jsonl"
            path.write_text("".join(json.dumps({"row": r["id"], "text_sha256": text_hash(r["text"]), "source": r["source"],
                                                "text": r["text"]}, ensure_ascii=False) + "\n" for r in rows),
                            encoding="utf-8")
            print(lang, len(rows), path)
    else:
        rows = train_rows()
        if args.what == "train":
            path = OUT / "generator-train-gold.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            print(f"wrote {path}")
        per = {lang: sum(r["lang"] == lang for r in rows) for lang in LANGS}
        print(f"{len(rows)} pairs with an instruction", per)


if __name__ == "__main__":
    main()
