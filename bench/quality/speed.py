"""Cost of the evaluators and of a refine round on real paragraphs: seconds per candidate and peak memory.

Runs in child processes so each figure has its own peak RSS:
* `trained`: the trained evaluator (one generator pass per draft + grounding) on N labelled candidates;
* `gain`: the earlier gain score (two base-model passes per draft, no label words) on the same candidates;
* `refine`: `refine.run` with the defaults (trained evaluator, label only) on a fresh store holding the same N
  candidates; `refine1`: the same with one round of rewrites (3 variants per flawed draft from the default generator).

    .venv/bin/python bench/quality/speed.py --n 40
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def items(n: int) -> list[dict]:
    from labels import table

    rows = table("v1")
    per_lang: dict[str, list[dict]] = {}
    for r in rows:
        per_lang.setdefault(r["lang"], []).append(r)
    out, i = [], 0
    while len(out) < n and any(per_lang.values()):  # round-robin over languages
        lang = sorted(per_lang)[i % len(per_lang)]
        if per_lang[lang]:
            out.append(per_lang[lang].pop(0))
        i += 1
    return out


def child(what: str, n: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = items(n)
    triples = [(r["instruction"], r["text"], r["lang"]) for r in data]
    if what == "trained":
        from xinstruct import evaluator

        ev = evaluator.load_default()
        model = evaluator.load_feature_model(ev)
        start = time.perf_counter()
        evaluator.assess(ev, model, triples)
    elif what == "gain":
        from xinstruct.models.embedded import load_embedded
        from xinstruct.refine import Evaluator, RefineConfig

        ev = Evaluator(load_embedded(adapter=None), RefineConfig(evaluator="gain"))
        start = time.perf_counter()
        ev.signals(triples, label_words=False)
    else:
        import tempfile

        from xinstruct import refine
        from xinstruct.store import Store

        sys.path.insert(0, str(HERE.parents[1] / "tests"))
        from conftest import add_candidates

        store = Store(Path(tempfile.mkdtemp()) / "speed.duckdb")
        add_candidates(store, [{"lang": r["lang"], "text": r["text"], "instruction": r["instruction"]} for r in data])
        start = time.perf_counter()
        stats = refine.run(store, refine.RefineConfig(rounds=1 if what == "refine1" else 0, progress=False))
    seconds = time.perf_counter() - start
    out = {"what": what, "n": len(data), "seconds": round(seconds, 1), "per_candidate_s": round(seconds / len(data), 2),
           "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)}
    if what.startswith("refine"):
        out |= {"refined": stats["refined"], "labels": stats["labels"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--only", default="trained,gain,refine,refine1")
    ap.add_argument("--child", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return
    from common import cpu_name  # noqa: E402

    for what in args.only.split(","):
        load = os.getloadavg()
        res = subprocess.run([sys.executable, __file__, "--child", what, "--n", str(args.n)], capture_output=True,
                             text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        print(json.dumps({**row, "load_before": [round(x, 1) for x in load], "cpu": cpu_name(),
                          "threads": os.environ.get("OMP_NUM_THREADS", "default")}), flush=True)


if __name__ == "__main__":
    main()
