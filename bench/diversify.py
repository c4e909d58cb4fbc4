"""Embed and cluster generated English instructions on CPU; k-means variants against each other in the same run.

    .venv/bin/python bench/diversify.py --n 100000 --k 1000

Instructions are generated from templates (verbs x topics x details), ~60-110 characters like the paper's
instructions. Prints a markdown table (machine, date) for BENCHMARKS.md. Target: 100k embedded and clustered in
at most 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VERBS = ["Write a short essay about", "Summarize the main points of", "Explain", "List the key facts about",
         "Compare", "Give advice on", "Describe", "Create a guide to", "Tell me about", "What are the benefits of",
         "How does one prepare", "Why is it important to understand"]
TOPICS = ["rice farming", "the monsoon", "local football clubs", "street food", "the national election", "mobile money",
          "traditional weddings", "river pollution", "public buses", "school exams", "tea plantations", "coastal fishing",
          "folk music", "the new metro line", "a regional festival", "small businesses", "hospital waiting times",
          "mangrove forests", "the history of the old city", "mountain tourism", "cooking fish curry", "saving money"]
DETAILS = ["for a family with children", "in the capital city", "during the dry season", "for first-time visitors",
           "according to recent news", "in simple words", "in five steps", "for farmers in the north", "for students",
           "with examples from the last decade", "and its effect on prices", "and what the government plans"]


def instructions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(VERBS)} {rng.choice(TOPICS)} {rng.choice(DETAILS)} ({i % 97})." for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    import numpy as np

    from xinstruct.diversify import Embedder, cluster

    texts = instructions(args.n)
    emb = Embedder()
    t = time.perf_counter()
    vectors = emb.encode(texts, batch_size=args.batch_size)
    embed_s = time.perf_counter() - t
    rows = [("embed (all-MiniLM-L6-v2, CPU)", embed_s, f"{args.n / embed_s:,.0f} instructions/s")]
    for algorithm in ("minibatch", "kmeans"):
        t = time.perf_counter()
        labels, dist = cluster(vectors, args.k, seed=0, algorithm=algorithm)
        s = time.perf_counter() - t
        sizes = np.bincount(labels)
        rows.append((f"k-means {algorithm}, k={args.k}", s,
                     f"mean distance {dist.mean():.3f}, clusters used {int((sizes > 0).sum())}, largest {sizes.max()}"))
    print(f"\n## Diversify ({platform.machine()}, {os.cpu_count()} cores, {date.today()}, {args.n:,} instructions)\n")
    print("| step | seconds | notes |\n|---|---:|---|")
    for name, s, note in rows:
        print(f"| {name} | {s:.1f} | {note} |")
    print(f"| embed + mini-batch k-means | {rows[0][1] + rows[1][1]:.1f} | target <= 300 s |")


if __name__ == "__main__":
    main()
