"""Extra training pairs for the evaluator, written to bench/out/quality/ for features.py --extra:

* `seed`: packaged seed pairs (accept) and hard negatives made from them (reject), a fixed sample;
* `gold`: each labelled dev candidate's gold instruction with its paragraph (accept: a careful reader wrote it).

    .venv/bin/python bench/quality/extra.py seed --n 120
    .venv/bin/python bench/quality/extra.py gold --tag v1
    .venv/bin/python bench/quality/extra.py train --tag v1    # seed-format pairs for `xinstruct train generator`

`train` writes bench/out/quality/generator-train-v1.jsonl: every dev paragraph with a gold instruction (the reader's
correction, or the draft itself when accepted), in the seed format, so that the generator can be retrained on the
packaged seed pairs plus the dev split's corrected instructions (never the test split):

    xinstruct train generator --seed xinstruct/data/seed/bn.jsonl ... --seed bench/out/quality/generator-train-v1.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[0] / "out" / "quality"


def seed_rows(n: int) -> list[dict]:
    from xinstruct.evaluator import hard_negatives
    from xinstruct.seed import load_seed

    pairs = load_seed()
    rng = random.Random(0)
    pos = rng.sample(pairs, min(n, len(pairs)))
    negs = hard_negatives(pairs, seed=0)
    by_kind: dict[str, list] = {}
    for neg in negs:
        by_kind.setdefault(neg[3], []).append(neg)
    per_kind = max(1, (2 * n) // len(by_kind))
    chosen = [x for kind in sorted(by_kind) for x in rng.sample(by_kind[kind], min(per_kind, len(by_kind[kind])))]
    rows = [{"id": f"seed-pos-{p.id}", "instruction": p.instruction, "text": p.response, "lang": p.lang,
             "split": "train", "label": "accept", "kind": "seed"} for p in pos]
    rows += [{"id": f"seed-neg-{kind}-{i}", "instruction": ins, "text": text, "lang": lang, "split": "train",
              "label": "reject", "kind": kind} for i, (ins, text, lang, kind) in enumerate(chosen)]
    return rows


def gold_rows(tag: str) -> list[dict]:
    from labels import table

    return [{"id": f"gold-{r['id']}", "instruction": r["gold"], "text": r["text"], "lang": r["lang"], "split": "dev",
             "label": "accept", "kind": "gold"}
            for r in table(tag) if r["split"] == "dev" and r.get("gold") and r["label"] != "accept"]


def train_rows(tag: str) -> list[dict]:
    from labels import table

    return [{"id": f"gold-{r['id']}", "lang": r["lang"], "instruction": r["gold"], "response": r["text"]}
            for r in table(tag) if r["split"] == "dev" and r.get("gold")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["seed", "gold", "train"])
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--tag", default="v1")
    args = ap.parse_args()
    rows = {"seed": lambda: seed_rows(args.n), "gold": lambda: gold_rows(args.tag), "train": lambda: train_rows(args.tag)}[args.what]()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / {"seed": "extra-seed.jsonl", "gold": f"extra-gold-{args.tag}.jsonl",
                  "train": f"generator-train-{args.tag}.jsonl"}[args.what]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
