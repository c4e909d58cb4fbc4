"""Print candidates of the labelled set beside their paragraphs (read from ../shared/data/web), for a reader.

    .venv/bin/python bench/quality/show.py --lang sw                 # every candidate of a language
    .venv/bin/python bench/quality/show.py --lang sw --second-pass   # the sample judged twice (10 per language)
    .venv/bin/python bench/quality/show.py --lang sw --todo FILE     # only those not yet in a labels FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared" / "data" / "web"
SECOND_PASS_PER_LANG = 10


def candidates(tag: str = "v1") -> list[dict]:
    return [json.loads(x) for x in (HERE / f"candidates-{tag}.jsonl").open(encoding="utf-8") if x.strip()]


def paragraphs(lang: str) -> dict[str, str]:
    rows = (json.loads(x) for x in (SHARED / f"{lang}.jsonl").open(encoding="utf-8") if x.strip())
    return {r["id"]: r["text"] for r in rows}


def second_pass(cands: list[dict], per_lang: int = SECOND_PASS_PER_LANG) -> list[dict]:
    """A fixed sample per language: the candidates with the smallest sha256 of their id."""
    out = []
    for lang in sorted({c["lang"] for c in cands}):
        mine = sorted((c for c in cands if c["lang"] == lang), key=lambda c: hashlib.sha256(c["id"].encode()).hexdigest())
        out += mine[:per_lang]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", required=True)
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--second-pass", action="store_true")
    ap.add_argument("--todo", help="labels file: show only candidates it does not hold yet")
    args = ap.parse_args()
    cands = candidates(args.tag)
    if args.second_pass:
        cands = second_pass(cands)
    cands = [c for c in cands if c["lang"] == args.lang]
    if args.todo and Path(args.todo).exists():
        done = {json.loads(x)["id"] for x in Path(args.todo).open(encoding="utf-8") if x.strip()}
        cands = [c for c in cands if c["id"] not in done]
    texts = paragraphs(args.lang)
    for c in cands:
        text = texts[c["row"]]
        assert hashlib.sha256(text.encode()).hexdigest() == c["text_sha256"], f"{c['row']}: paragraph changed in shared/"
        print(f"=== {c['id']}  ({c['source']}, {c['split']})\nINSTRUCTION: {c['instruction']}\nTEXT:\n{text}\n")
    print(f"[{len(cands)} candidates]")


if __name__ == "__main__":
    main()
