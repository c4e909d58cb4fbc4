"""Generation commands: `xinstruct generate` and `xinstruct train generator`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import generate as generate_mod
from .. import train as train_mod
from ..store import registry
from ._app import DbOption, app, open_store
from .options import config_options

train_app = typer.Typer(help="Train models from the store and the seed data.\n\nExample: xinstruct train generator",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")


@app.command()
@config_options(generate_mod.GenerateConfig, "lang", "limit", "model", "backend", "batch_size", "seed_files", "few_shot",
                "temperature", "max_new_tokens", "samples", "round_id", "device", "tensor_parallel_size",
                "pipeline_parallel_size", "distributed_backend", flags={"seed_files": "--seed", "round_id": "--round"})
def generate(cfg: generate_mod.GenerateConfig, db: DbOption = None) -> None:
    """Write an English instruction for every kept document that no round has used yet.

    Resumable: a rerun skips documents already done; Ctrl-C loses at most the batch in flight.

    Example: xinstruct generate --lang sw --limit 100
    """
    stats = generate_mod.run(open_store(db), cfg)
    if not stats["pending"]:
        typer.echo(f"round {stats['round']}: nothing to generate (every kept document already has a candidate)")
        return
    reasons = ", ".join(f"{k} {v}" for k, v in stats["reasons"].items()) or "none"
    typer.echo(f"round {stats['round']}, model {stats['model']} (few-shot {stats['few_shot']}): "
               f"generated {stats['generated']} of {stats['pending']} pending, ok {stats['ok']}, "
               f"rejected {stats['rejected']} ({reasons})")
    typer.echo(f"speed: {stats['tokens_per_s']} tokens/s, {stats['docs_per_min']} documents/min "
               f"({stats['seconds']} s in the model)")


TRAIN = train_mod.TrainConfig  # the defaults of `train generator` are TrainConfig's


@train_app.command("generator")
def train_generator(
    seed: Annotated[Optional[list[Path]], typer.Option(
        "--seed", help="Seed file(s) of pairs (default: the packaged seed set).")] = None,
    lang: Annotated[Optional[list[str]], typer.Option(help="Train on these languages only (repeatable).")] = None,
    base: Annotated[str, typer.Option(help="Base model: gemma3-270m, a folder or a model version.")] = TRAIN.base,
    lora: Annotated[bool, typer.Option("--lora/--full", help="LoRA adapter (default) or full fine-tune.")] = TRAIN.lora,
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the seed pairs (at least 0.01).")] = TRAIN.epochs,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Optimizer steps (overrides --epochs).")] = TRAIN.max_steps,
    lr: Annotated[float, typer.Option(min=1e-8, help="Peak learning rate (above 0).")] = TRAIN.lr,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per forward pass.")] = TRAIN.batch_size,
    grad_accum: Annotated[int, typer.Option(min=1, help="Forward passes per optimizer step.")] = TRAIN.grad_accum,
    max_tokens: Annotated[int, typer.Option(min=32, help="Longest example in tokens (the text is cut, never the "
                                            "instruction).")] = TRAIN.max_tokens,
    holdout_every: Annotated[int, typer.Option(min=0,
        help="Hold out every N-th pair per language for evaluation (0 = train on all).")] = TRAIN.holdout_every,
    fp16: Annotated[bool, typer.Option(help="Save the LoRA weights in fp16 (half the size).")] = TRAIN.fp16,
    name: Annotated[Optional[str], typer.Option(help="Version name (default: backward-<data hash>).")] = TRAIN.name,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda (default: cuda when available).")] = TRAIN.device,
    db: DbOption = None,
) -> None:
    """Train the backward model (native text -> English instruction) on seed pairs and register it.

    Then `xinstruct generate --model NAME` uses it. About 5 min per epoch of 240 pairs on 2 CPU cores.

    Example: xinstruct train generator --seed my_pairs.jsonl --epochs 2 --name sw-backward-v2
    """
    cfg = train_mod.TrainConfig(
        seed_files=[str(p) for p in seed or []], langs=list(lang or []), base=base, lora=lora, epochs=epochs,
        max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum, max_tokens=max_tokens,
        holdout_every=holdout_every, fp16=fp16, name=name, device=device,
    )
    store = open_store(db)
    version = train_mod.train_generator(store, cfg)
    trained = registry.model_version(store, version)
    typer.echo(f"trained {version}: {trained.steps} steps, final loss {trained.final_loss:.3f}, saved in {trained.path}")
    typer.echo(f"use it: xinstruct generate --model {version}")
