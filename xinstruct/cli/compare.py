"""`xinstruct eval compare`: the natural comparisons (reviewed vs before review, round N vs round N-1) in one command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import DbOption, open_store
from .instruct import (
    TUNE_DEFAULTS,
    BaseOption,
    BatchSizeOption,
    DeviceOption,
    EpochsOption,
    FullOption,
    GradAccumOption,
    LoraROption,
    LrOption,
    MaxStepsOption,
    MaxTokensOption,
    _codes,
    tune_config,
)
from .judging import echo_report
from .quality import eval_app


@eval_app.command("compare")
def compare_cmd(
    questions: Annotated[Path, typer.Option(help="Question file, JSON Lines (as `eval answer` reads it).")],
    lang: Annotated[list[str], typer.Option(help="Languages of the data, the answers and the report "
                                                 "(repeatable or comma-separated).")],
    name: Annotated[str, typer.Option(help="Prefix of the two models: <name>-reviewed and <name>-drafts, or "
                                           "<name>-r<N> and <name>-r<N-1>. A rerun with the same name resumes.")],
    judge: Annotated[str, typer.Option(help="The judge: a local model folder or version name (transformers, vllm), "
                                            "or the model name an endpoint serves (openai).")],
    what: Annotated[str, typer.Option(
        help="reviewed: accepted and edited pairs (final texts) vs the drafts of the same documents before review; "
             "rounds: the data kept as of round N vs as of round N-1.")] = "reviewed",
    round_: Annotated[Optional[int], typer.Option(
        "--round", min=2, help="rounds: N, compared with N-1 (default: the latest round with a feedback run).")] = None,
    before: Annotated[str, typer.Option(
        help="reviewed: B is the drafts of every decided pair (accepted, edited, rejected: the effect of filtering "
             "and editing) or of the kept pairs only (the effect of editing).")] = "decided",
    base: BaseOption = "embedded",
    full: FullOption = not TUNE_DEFAULTS.lora,
    epochs: EpochsOption = TUNE_DEFAULTS.epochs,
    max_steps: MaxStepsOption = TUNE_DEFAULTS.max_steps,
    lr: LrOption = TUNE_DEFAULTS.lr,
    batch_size: BatchSizeOption = TUNE_DEFAULTS.batch_size,
    grad_accum: GradAccumOption = TUNE_DEFAULTS.grad_accum,
    max_tokens: MaxTokensOption = TUNE_DEFAULTS.max_tokens,
    lora_r: LoraROption = TUNE_DEFAULTS.lora_r,
    device: DeviceOption = TUNE_DEFAULTS.device,
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most this many questions per language.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer in tokens.")] = 256,
    answer_batch_size: Annotated[int, typer.Option(min=1, help="Questions per model call when answering.")] = 8,
    answer_backend: Annotated[str, typer.Option(help="transformers (CPU or one GPU) or vllm (GPUs).")] = "transformers",
    judge_backend: Annotated[str, typer.Option(
        help="transformers | vllm (GPU) | openai (an OpenAI-compatible endpoint).")] = "transformers",
    base_url: Annotated[Optional[str], typer.Option(
        help="openai: the endpoint up to /v1 (default $OPENAI_BASE_URL or https://api.openai.com/v1).")] = None,
    api_key_env: Annotated[str, typer.Option(help="openai: the environment variable holding the key.")]
    = "OPENAI_API_KEY",
    judge_max_new_tokens: Annotated[int, typer.Option(min=16, help="The judge's output limit.")] = 384,
    judge_batch_size: Annotated[int, typer.Option(min=1, help="Judgements per batch; each batch is stored at once.")]
    = 16,
    out: Annotated[Optional[Path], typer.Option(
        help="Folder for the two exports (default: exports/compare beside the database).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Build the two datasets, tune a model on each with the same settings, answer the questions with both, judge in
    both orders and print the per-language report (export, train instruct, eval answer, eval judge, eval report in
    one step). Resumable: a rerun reuses models tuned on the same data and skips stored answers and judgements.

    Example: xinstruct eval compare --questions vicuna80_questions.jsonl --lang sw,ur --base /models/Llama-3-8B
    --judge Qwen/Qwen2.5-72B-Instruct --judge-backend openai --base-url http://localhost:8000/v1 --name llama-sw-ur
    """
    from .. import compare

    train = tune_config(base=base, full=full, epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size,
                        grad_accum=grad_accum, max_tokens=max_tokens, lora_r=lora_r, device=device)
    cfg = compare.CompareConfig(
        questions=str(questions), langs=_codes(lang), name=name, judge=judge, what=what, round=round_, before=before,
        out=str(out) if out else None, train=train, limit=limit, max_new_tokens=max_new_tokens,
        answer_batch_size=answer_batch_size, answer_backend=answer_backend, judge_backend=judge_backend,
        judge_options={"base_url": base_url, "api_key_env": api_key_env} if judge_backend == "openai" else {},
        judge_max_new_tokens=judge_max_new_tokens, judge_batch_size=judge_batch_size)
    result = compare.run(open_store(db), cfg, progress=lambda msg: typer.echo(msg, err=True))
    for key in ("a", "b"):
        side = result[key]
        rows = ", ".join(f"{k} {v}" for k, v in side.rows.items())
        typer.echo(f"{key.upper()} = {side.model} ({result['models'][side.model]}): {side.label}; rows {rows}")
    s = result["judge"]
    typer.echo(f"judged {s.judged} now, {s.skipped} already judged, {s.unparseable} unparseable")
    if as_json:
        typer.echo(json.dumps(result["report"], indent=1, ensure_ascii=False, default=str))
    else:
        echo_report(result["report"])
