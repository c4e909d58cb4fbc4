"""The labelled set as one table: candidates + first-pass labels (+ paragraphs from ../shared/data/web).

    .venv/bin/python bench/quality/labels.py --tag v1     # writes bench/out/quality/labels-v1.jsonl for `xinstruct eval labels`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[0] / "out" / "quality"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.open(encoding="utf-8") if x.strip()] if path.exists() else []


def judgements(pass_no: int = 1, tag: str = "v1") -> dict[str, dict]:
    """id -> label record of the given pass, for candidates of `tag`."""
    out = {}
    for path in sorted((HERE / "labels").glob(f"*.pass{pass_no}.jsonl")):
        for r in read_jsonl(path):
            if r["id"].startswith(tag + "-"):
                out[r["id"]] = r
    return out


def table(tag: str = "v1", with_text: bool = True) -> list[dict]:
    from show import candidates, paragraphs

    labels = judgements(1, tag)
    rows, texts = [], {}
    for c in candidates(tag):
        lab = labels.get(c["id"])
        if lab is None:
            continue
        if with_text and c["lang"] not in texts:
            texts[c["lang"]] = paragraphs(c["lang"])
        rows.append({**c, "label": lab["label"], "gold": lab.get("gold"), "failures": lab.get("failures", []),
                     **({"text": texts[c["lang"]][c["row"]]} if with_text else {})})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", default="v1")
    args = ap.parse_args()
    rows = table(args.tag)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"labels-{args.tag}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} labelled candidates to {path}")


if __name__ == "__main__":
    main()
