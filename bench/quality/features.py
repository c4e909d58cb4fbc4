"""Model signals of every labelled candidate, cached for the evaluator's analysis and training (bench/out/quality/).

For each candidate (instruction, paragraph from ../shared/data/web):
* the earlier score's signal: base-model likelihood gain of the text given the instruction (refine.Evaluator, what the
  app showed), and
* xinstruct.evaluator.model_signals under two models: the default generator (base + shipped adapter) and the bare base.

    .venv/bin/python bench/quality/features.py --tag v1 [--extra FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[0] / "out" / "quality"


def load_items(tag: str, extra: str | None, only_extra: bool = False) -> list[dict]:
    from show import candidates, paragraphs

    items = [] if only_extra else candidates(tag)
    texts = {}
    for c in items:
        if c["lang"] not in texts:
            texts[c["lang"]] = paragraphs(c["lang"])
        c["text"] = texts[c["lang"]][c["row"]]
    if extra:  # more (instruction, paragraph) pairs, e.g. gold instructions or synthetic negatives
        items += [json.loads(x) for x in Path(extra).open(encoding="utf-8") if x.strip()]
    return items


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--extra")
    ap.add_argument("--name", default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--only-extra", action="store_true")
    ap.add_argument("--models", default="gen,base", help="which feature models: gen (generator), base (bare base)")
    ap.add_argument("--gain", default="all", help="measure the earlier gain score on: all, test (split) or none")
    args = ap.parse_args()
    from xinstruct.evaluator import model_signals
    from xinstruct.models.embedded import load_embedded
    from xinstruct.refine import Evaluator, RefineConfig

    items = load_items(args.tag, args.extra, args.only_extra)
    triples = [(c["instruction"], c["text"], c["lang"]) for c in items]
    out: dict[str, np.ndarray] = {"id": np.array([c["id"] for c in items])}
    wanted = args.models.split(",")
    plan = [(n, a) for n, a in (("gen", "default"), ("base", None)) if n in wanted]
    if args.gain != "none" and "base" not in wanted:
        plan.append(("gain-only", None))
    for name, adapter in plan:
        model = load_embedded(adapter=adapter, batch_size=args.batch_size)
        if name != "gain-only":
            start = time.perf_counter()
            sigs = model_signals(model, triples)
            out[f"{name}_seconds"] = np.array(time.perf_counter() - start)
            out[f"{name}_fit"] = np.array([s.fit for s in sigs])
            out[f"{name}_prior"] = np.array([s.prior for s in sigs])
            out[f"{name}_hidden"] = np.stack([s.hidden for s in sigs])
            print(name, f"{float(out[f'{name}_seconds']) / len(items):.2f} s per candidate", flush=True)
        if adapter is None and args.gain != "none":  # the earlier score (gain) under the base model, no label words
            sel = [i for i, c in enumerate(items) if args.gain == "all" or c.get("split") == args.gain]
            start = time.perf_counter()
            old = Evaluator(model, RefineConfig(evaluator="gain")).signals([triples[i] for i in sel], label_words=False)
            out["gain_seconds"] = np.array(time.perf_counter() - start)
            gain = np.full(len(items), np.nan)
            gain[sel] = [s.gain for s in old]
            out["gain"] = gain
            print("gain", f"{float(out['gain_seconds']) / max(1, len(sel)):.2f} s per candidate", flush=True)
        del model
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"features-{args.name or args.tag}.npz"
    np.savez(path, **out)
    print("wrote", path)


if __name__ == "__main__":
    main()
