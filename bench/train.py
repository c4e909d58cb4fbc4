"""Benchmark of a backward-model training step on the embedded model (CPU): the loss on the labelled positions only
(`train.target_loss`, logits kept from the first labelled column) against the model's own loss over full-vocabulary
logits at every position (what training did before), on the same micro-batches of packaged seed pairs, in one run.

    python bench/train.py [--batches 6] [--batch-size 4] [--max-tokens 256]

Prints a markdown table: seconds per micro-batch (forward + backward, LoRA r=16 as `train generator` sets it up) and
the largest difference between the two losses (they must agree).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import cpu_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=6, help="micro-batches timed per loss (after one warm-up each)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()

    import torch

    from xinstruct import train
    from xinstruct.models.embedded import EMBEDDED_NAME
    from xinstruct.models.hf import load_hf, resolve_model
    from xinstruct.seed import load_seed

    cfg = train.TrainConfig(max_tokens=args.max_tokens, device="cpu")
    tokenizer, model = load_hf(resolve_model(None, EMBEDDED_NAME), "cpu")
    model = train._trainable(model, cfg)
    pairs = load_seed()[: args.batch_size * (args.batches + 1)]
    examples = [train.encode_example(tokenizer, p, cfg.max_tokens) for p in pairs]
    batches = [train.collate(examples[i:i + args.batch_size], tokenizer.pad_token_id)
               for i in range(0, len(examples), args.batch_size)]

    def full(batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     position_ids=batch["position_ids"], labels=batch["labels"]).loss

    losses: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for name, loss_fn in (("full-vocabulary logits at every position (before)", full),
                          ("logits at the labelled positions only (train.target_loss)", lambda b: train.target_loss(model, b))):
        loss_fn(batches[0]).backward()  # warm-up
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        losses[name] = []
        for batch in batches[1:]:
            loss = loss_fn(batch)
            loss.backward()
            model.zero_grad(set_to_none=True)
            losses[name].append(float(loss.detach()))
        seconds[name] = (time.perf_counter() - start) / (len(batches) - 1)

    before, after = (losses[k] for k in losses)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:]) / (len(batches) - 1)
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}; "
          f"{len(batches) - 1} micro-batches of {args.batch_size} seed pairs, max_tokens {args.max_tokens} "
          f"({tokens:.0f} real tokens per micro-batch)\n")
    print("| loss | seconds per micro-batch (forward + backward) |")
    print("|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {s:.2f} |")
    print(f"\nlargest difference between the two losses on the same batch: "
          f"{max(abs(a - b) for a, b in zip(before, after)):.2e}")


if __name__ == "__main__":
    main()
