"""The method's last stage on the command line: `xinstruct train instruct` and `xinstruct eval answer`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..instruct import InstructConfig
from ._app import DbOption, echo_table, open_store
from .generation import train_app
from .quality import eval_app

# The tuning options of `train instruct`, also those of `eval compare` (both models of a comparison are tuned alike);
# their defaults are InstructConfig's.
TUNE_DEFAULTS = InstructConfig
BaseOption = Annotated[str, typer.Option(
    help="Base model: embedded (Gemma 3 270M, CPU), a local model folder (GPU) or a model version.")]
FullOption = Annotated[bool, typer.Option("--full", help="Fine-tune all weights instead of a LoRA adapter.")]
EpochsOption = Annotated[float, typer.Option(min=0.01, help="Passes over the export's rows.")]
MaxStepsOption = Annotated[Optional[int], typer.Option(min=1, help="Optimizer steps (overrides --epochs).")]
LrOption = Annotated[float, typer.Option(min=1e-8, help="Peak learning rate (cosine decay).")]
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Rows per forward pass.")]
GradAccumOption = Annotated[int, typer.Option(min=1, help="Forward passes per optimizer step.")]
MaxTokensOption = Annotated[int, typer.Option(
    min=32, help="Longest example in tokens (the response is cut to fit, never the prompt).")]
LoraROption = Annotated[int, typer.Option(min=1, help="LoRA rank (the LoRA scaling alpha is twice the rank).")]
DeviceOption = Annotated[Optional[str], typer.Option(help="cpu or cuda (default: cuda when available).")]


def tune_config(**kw) -> InstructConfig:
    """The InstructConfig of the command-line tuning options (`full` -> lora, alpha = 2 x rank)."""
    full, lora_r = kw.pop("full"), kw.pop("lora_r")
    return InstructConfig(lora=not full, lora_r=lora_r, lora_alpha=2 * lora_r, **kw)


def _codes(values: list[str] | None) -> list[str]:
    """Repeatable and/or comma-separated language codes."""
    return [c for v in values or [] for c in v.replace(",", " ").split() if c]


@train_app.command("instruct")
def train_instruct(
    export: Annotated[Path, typer.Option(help="Export folder (written by `xinstruct export`; alpaca or messages).")],
    base: BaseOption = "embedded",
    name: Annotated[Optional[str], typer.Option(help="Version name (default: instruct-<export hash>).")] = None,
    full: FullOption = not TUNE_DEFAULTS.lora,
    langs: Annotated[Optional[list[str]], typer.Option(
        "--langs", "--lang", help="Train on these languages only (repeatable or comma-separated).")] = None,
    epochs: EpochsOption = TUNE_DEFAULTS.epochs,
    max_steps: MaxStepsOption = TUNE_DEFAULTS.max_steps,
    lr: LrOption = TUNE_DEFAULTS.lr,
    batch_size: BatchSizeOption = TUNE_DEFAULTS.batch_size,
    grad_accum: GradAccumOption = TUNE_DEFAULTS.grad_accum,
    max_tokens: MaxTokensOption = TUNE_DEFAULTS.max_tokens,
    lora_r: LoraROption = TUNE_DEFAULTS.lora_r,
    fp16: Annotated[bool, typer.Option(help="Save the LoRA weights in fp16 (half the size).")] = TUNE_DEFAULTS.fp16,
    device: DeviceOption = TUNE_DEFAULTS.device,
    db: DbOption = None,
) -> None:
    """Tune an instruction model on an export (Alpaca template, `... Answer in <Language>.`, loss on the response)
    and register it (kind instruct, with the export's content hash).

    Example: xinstruct train instruct --export exports/sw-reviewed --name sw-reviewed-v1 --epochs 1 --max-tokens 256
    """
    from .. import instruct

    cfg = tune_config(export=str(export), base=base, name=name, full=full, langs=_codes(langs), epochs=epochs,
                      max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum, max_tokens=max_tokens,
                      lora_r=lora_r, fp16=fp16, device=device)
    store = open_store(db)
    version = instruct.train_instruct(store, cfg)
    from ..store import registry

    mv = registry.model_version(store, version)
    typer.echo(f"trained {version}: {mv.steps} steps, final loss {mv.final_loss:.3f}, saved in {mv.path}")
    typer.echo(f"answer with it: xinstruct eval answer --model {version} --questions FILE --lang xx")


@eval_app.command("answer")
def answer(
    model: Annotated[str, typer.Option(
        help="Model version name, model folder, or embedded/base (the untuned embedded base, the natural baseline).")],
    questions: Annotated[Path, typer.Option(
        help="Question file, JSON Lines: an id (id, question_id or idx; else the line number) and a question "
             "(question, instruction, Instruction, turns[0] or question_translated).")],
    lang: Annotated[list[str], typer.Option(help="Answer in this language (repeatable or comma-separated).")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most this many questions per language.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer in tokens (longer ones are cut: 'length').")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Questions per model call (and per transaction).")] = 8,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.0,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    backend: Annotated[str, typer.Option(
        help="transformers (CPU or one GPU) or vllm (GPUs; a tuned version or a model folder).")] = "transformers",
    db: DbOption = None,
) -> None:
    """Answer a question file in each language and store the answers (with model, prompt and sampling) for judging.

    English questions get ` Answer in <Language>.` as in training; questions whose own `lang` is another language are
    asked as written, for that language only. Resumable: a rerun skips the questions already answered.

    Example: xinstruct eval answer --model sw-reviewed-v1 --questions vicuna80_questions.jsonl --lang sw --limit 20
    """
    from .. import instruct

    cfg = instruct.AnswerConfig(model=model, questions=str(questions), langs=_codes(lang), limit=limit,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, temperature=temperature,
                                device=device, backend=backend)
    result = instruct.answer_questions(open_store(db), cfg)
    typer.echo(f"model {result['model']}, question set {result['question_set']}")
    echo_table([{"lang": k, **v} for k, v in result["langs"].items()])
