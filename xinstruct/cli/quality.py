"""`xinstruct eval labels`: how well the evaluator (and a generator) agree with human labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import DbOption, app, echo_table, open_store

eval_app = typer.Typer(help="Measure the evaluator and the generator against human labels.\n\n"
                       "Example: xinstruct eval labels my_labels.jsonl", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("labels")
def labels(
    file: Annotated[Optional[Path], typer.Argument(
        help="Labels as JSON Lines (lang, instruction, text, label accept|edit|reject, gold). "
             "Without a file: the store's review decisions.")] = None,
    evaluator: Annotated[str, typer.Option(
        help="trained (the shipped evaluator), gain (the uncalibrated likelihood-gain score), or stored "
             "(the score each candidate had when it was labelled; store decisions only).")] = "trained",
    generator: Annotated[Optional[str], typer.Option(
        help="Also generate an instruction for each text with this generator ('default' = the embedded one) and "
             "report its similarity to the gold instructions.")] = None,
    lang: Annotated[Optional[str], typer.Option(help="Only this language.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    db: DbOption = None,
) -> None:
    """Per language: ROC-AUC of the evaluator (accept vs rest; accept-or-edit vs reject), its calibration (Brier,
    ECE), and optionally a generator's similarity to the corrected instructions.

    Example: xinstruct eval labels --evaluator stored     # the store's decisions against the scores reviewers saw
    """
    from .. import quality
    from ..errors import ConfigError
    from ..langs import check_lang

    if evaluator not in ("trained", "gain", "stored"):
        raise ConfigError(f"--evaluator must be trained, gain or stored, not {evaluator!r}")
    lang = check_lang(lang) if lang else None
    store = None
    if file is not None:
        if evaluator == "stored":
            raise ConfigError("--evaluator stored needs the store's decisions: leave out the labels file")
        items = [x for x in quality.read_labels(file) if lang in (None, x.lang)]
        if db is not None:
            store = open_store(db)  # its retrained evaluator, if any, scores the file
    else:
        store = open_store(db)
        items = quality.store_labels(store, lang)
        if not items:
            raise ConfigError("the store holds no reviewed candidates yet; review some or pass a labels file")
    scores = quality.score_labels(items, evaluator, store=store)
    report = {k: v.as_dict() for k, v in quality.by_language(items, scores).items()}
    if generator:
        for k, v in quality.generator_similarity(items, generator).items():
            report.setdefault(k, {})["gold_similarity"] = v
    if as_json:
        typer.echo(json.dumps(report, indent=1))
    else:
        echo_table([{"lang": k, **v} for k, v in report.items()])
