"""How well the evaluator's signals separate good from bad candidates, on our own labelled examples.

    .venv/bin/python bench/evaluator.py [--per-lang 4]

Good = a held-out seed pair (a person wrote the instruction for that native text); bad = the same text with the
instruction of another held-out pair of the same language (a fluent English instruction that the text does not
answer). The embedded Gemma 3 270M base scores every pair; ROC-AUC of each signal and of the default score.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import cpu_name  # noqa: E402
from xinstruct.refine import Evaluator, RefineConfig, combine  # noqa: E402
from xinstruct.seed import load_seed, split_heldout  # noqa: E402


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from xinstruct.models.embedded import load_embedded

    ap = argparse.ArgumentParser()
    ap.add_argument("--per-lang", type=int, default=4)
    args = ap.parse_args()
    _, held = split_heldout(load_seed(), every=10)  # the pairs the shipped adapter never saw
    items, labels = [], []
    for lang in sorted({p.lang for p in held}):
        mine = [p for p in held if p.lang == lang][: args.per_lang]
        for i, p in enumerate(mine):
            other = mine[(i + 1) % len(mine)]
            items += [(p.instruction, p.response, lang), (other.instruction, p.response, lang)]
            labels += [1, 0]
    evaluator = Evaluator(load_embedded(adapter=None), RefineConfig())
    start = time.perf_counter()
    signals = evaluator.signals(items)
    seconds = time.perf_counter() - start
    print(f"\n## Evaluator on our labelled pairs ({cpu_name()}, {os.cpu_count()} cores, {date.today()}; "
          f"{len(items)} pairs, {len(items) // 2} matched + {len(items) // 2} mismatched, 10 languages, "
          f"{seconds:.0f} s)\n")
    print("| signal | ROC-AUC good vs bad |\n|---|---:|")
    for name, values in [("P(good) from label words", [s.p_good for s in signals]),
                         ("likelihood gain (log P(text|instr) - log P(text))", [s.gain for s in signals]),
                         ("conditional likelihood log P(text|instr)", [s.ll_text for s in signals]),
                         ("default score (uncalibrated blend)", [combine(s) for s in signals])]:
        print(f"| {name} | {roc_auc_score(labels, values):.3f} |")
    import numpy as np

    gains = np.array([s.gain for s in signals])
    y = np.array(labels)
    print("\n| gain quantile | 10% | 25% | 50% | 75% | 90% |\n|---|---:|---:|---:|---:|---:|")
    for name, mask in [("matched (good)", y == 1), ("mismatched (bad)", y == 0)]:
        q = np.quantile(gains[mask], [0.1, 0.25, 0.5, 0.75, 0.9])
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in q) + " |")


if __name__ == "__main__":
    main()
