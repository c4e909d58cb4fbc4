"""`xinstruct eval judge` (pairwise judging in both orders), `xinstruct eval report` and `xinstruct eval comparisons`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..judge import JUDGE_BACKENDS
from ._app import DbOption, echo_table, open_store
from .quality import eval_app


def _question_set(store, model_a: str, model_b: str, question_set: str | None) -> str:
    from ..errors import InputError
    from ..store.judging import answer_sets

    sets_a, sets_b = answer_sets(store, model_a), answer_sets(store, model_b)
    both = [s for s in sets_a if s in sets_b]
    if question_set is not None:
        if question_set not in both:
            raise InputError(f"question set {question_set!r} is not answered by both models",
                             hint=f"sets answered by both: {', '.join(both) or 'none'}")
        return question_set
    if len(both) == 1:
        return both[0]
    if not both:
        raise InputError(f"{model_a} and {model_b} have no answered question set in common",
                         hint=f"{model_a}: {', '.join(sets_a) or 'no answers'}; {model_b}: "
                              f"{', '.join(sets_b) or 'no answers'}; run `xinstruct eval answer` for both")
    raise InputError("both models answered several question sets", hint=f"choose one with --questions-set: "
                                                                           f"{', '.join(both)}")


def _langs(lang: list[str] | None) -> list[str] | None:
    from ..langs import check_lang

    return [check_lang(x) for x in lang] if lang else None


@eval_app.command("judge")
def judge_cmd(
    a: Annotated[str, typer.Option("--a", help="Model A (as named in its answers), e.g. the reviewed-data model.")],
    b: Annotated[str, typer.Option("--b", help="Model B, e.g. the model of the same documents before review.")],
    judge: Annotated[str, typer.Option(help="The judge: a local model folder or version name (transformers, vllm), "
                                            "or the model name an endpoint serves (openai).")],
    backend: Annotated[str, typer.Option(help="transformers | vllm (GPU) | openai (an OpenAI-compatible endpoint).")]
    = "transformers",
    questions_set: Annotated[Optional[str], typer.Option(
        "--questions-set", help="The question set to judge (default: the one both models answered).")] = None,
    lang: Annotated[Optional[list[str]], typer.Option(help="Only these languages (repeat the option).")] = None,
    base_url: Annotated[Optional[str], typer.Option(
        help="openai: the endpoint up to /v1 (default $OPENAI_BASE_URL or https://api.openai.com/v1), e.g. "
             "http://localhost:8000/v1 for `vllm serve`.")] = None,
    api_key_env: Annotated[str, typer.Option(help="openai: the environment variable holding the key.")]
    = "OPENAI_API_KEY",
    timeout: Annotated[float, typer.Option(min=1, help="openai: seconds per request before a retry.")] = 120.0,
    retries: Annotated[int, typer.Option(min=0, help="openai: retries on timeouts, 429 and 5xx (backoff 1, 2, 4... s).")]
    = 5,
    concurrency: Annotated[int, typer.Option(min=1, help="openai: requests in flight at once.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(min=16, help="The judge's output limit (scores come first).")] = 384,
    batch_size: Annotated[int, typer.Option(min=1, help="Judgements per batch; each batch is stored at once.")] = 16,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N questions per language.")] = None,
    tensor_parallel_size: Annotated[int, typer.Option(min=1, help="vllm: GPUs to shard the judge over.")] = 1,
    db: DbOption = None,
) -> None:
    """Judge A's answers against B's in both orders (scores 0-10; a win only if A wins in both orders); resumable.

    Example: xinstruct eval judge --a fi-reviewed --b fi-unreviewed --judge Qwen/Qwen2.5-72B-Instruct --backend openai
    --base-url http://localhost:8000/v1
    """
    from dataclasses import replace

    from .. import judge as judging
    from ..errors import ConfigError

    if backend not in JUDGE_BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(JUDGE_BACKENDS)}, not {backend!r}")
    store = open_store(db)
    qset = _question_set(store, a, b, questions_set)
    langs = _langs(lang)
    model, info = judging.load_judge(judge, backend, store, base_url=base_url, api_key_env=api_key_env,
                                     timeout=timeout, retries=retries, concurrency=concurrency,
                                     tensor_parallel_size=tensor_parallel_size, batch_size=batch_size)
    params = replace(judging.JUDGE_SAMPLING, max_new_tokens=max_new_tokens)
    stats = judging.run(store, model, a, b, qset, langs=langs, params=params, batch_size=batch_size, limit=limit,
                        sampling_info=info, progress=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"{a} vs {b} on {qset}, judge {model.name} ({judging.PROMPT_VERSION}): {stats.pairs} pairs; "
               f"{stats.judged} judged now, {stats.skipped} already judged, {stats.unparseable} unparseable, "
               f"{stats.missing} answered by one model only; {stats.seconds:.1f} s")
    typer.echo(f"next: xinstruct eval report --a {a} --b {b}")


@eval_app.command("report")
def report_cmd(
    a: Annotated[str, typer.Option("--a", help="Model A.")],
    b: Annotated[str, typer.Option("--b", help="Model B.")],
    judge: Annotated[Optional[str], typer.Option(help="The judge (needed when A vs B was judged by several).")] = None,
    questions_set: Annotated[Optional[str], typer.Option("--questions-set", help="The question set.")] = None,
    lang: Annotated[Optional[list[str]], typer.Option(help="Only these languages.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Also write the JSON report to this file.")] = None,
    db: DbOption = None,
) -> None:
    """Per language: A's win / tie / loss against B (95% Wilson intervals over decided pairs), unparseable judge
    outputs, the automatic measures of both answer sets, and what each model was trained on."""
    from .. import judge_report

    store = open_store(db)
    rep = judge_report.report(store, a, b, judge=judge, question_set=questions_set, langs=_langs(lang))
    text = json.dumps(rep, indent=1, ensure_ascii=False, default=str)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if as_json:
        typer.echo(text)
        return
    echo_report(rep)


def echo_report(rep: dict) -> None:
    """The report as `eval report` prints it (also printed by `eval compare`)."""
    from .. import judge_report

    typer.echo(f"{rep['model_a']} (A) vs {rep['model_b']} (B) on {rep['question_set']}; judge {rep['judge']} "
               f"({rep['prompt_version']}), both orders; a win needs both. Interval: {rep['interval']}.")
    echo_table(judge_report.table(rep))
    typer.echo("")
    echo_table(judge_report.model_rows(rep))
    if rep["unparseable_total"]:
        typer.echo(f"\n{rep['unparseable_total']} unparseable judge outputs (not counted as ties), e.g.:")
        for u in rep["unparseable"][:5]:
            typer.echo(f"  {u['lang']} {u['question_id']} {u['position']}: {u['error']}: {u['raw'][:120]!r}")


@eval_app.command("comparisons")
def comparisons_cmd(db: DbOption = None) -> None:
    """The stored comparisons (model A, model B, judge, prompt, question set)."""
    from ..store.judging import comparisons

    rows = comparisons(open_store(db))
    echo_table([{**r, "langs": ",".join(r["langs"])} for r in rows])
