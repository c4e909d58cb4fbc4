"""Refinement, diversification and whole-pipeline commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import diversify as diversify_mod
from .. import pipeline
from .. import refine as refine_mod
from ..config import describe, override
from ..generate import GenerateConfig
from ._app import DbOption, app, new_or_existing_store, open_store
from .options import config_options, option_type


@app.command()
@config_options(refine_mod.RefineConfig, "lang", "rounds", "evaluator", "model", "backend", "batch_size", "limit",
                "clean_responses", "judge")
def refine(cfg: refine_mod.RefineConfig, db: DbOption = None) -> None:
    """Label candidates good / flawed / bad with a score and a reason; rewrite flawed instructions; repeat.

    Example: xinstruct refine --lang sw              # label only
    Example: xinstruct refine --lang sw --rounds 1   # then one round of rewrites for flawed drafts
    """
    stats = refine_mod.run(open_store(db), cfg)
    typer.echo(f"labelled {stats['labelled']}, refined {stats['refined']} in {stats['rounds']} round(s); "
               f"labels now: {json.dumps(stats['labels'])}")


@app.command()
@config_options(diversify_mod.DiversifyConfig, "lang", "target", "k", "embedder", "seed", "algorithm")
def diversify(cfg: diversify_mod.DiversifyConfig, db: DbOption = None) -> None:
    """Embed English instructions, cluster them, and select the best candidates spread over clusters.

    Example: xinstruct diversify --lang ur --target 500
    """
    for lang_, s in diversify_mod.run(open_store(db), cfg).items():
        typer.echo(f"{lang_}: {s['candidates']} candidates, {s['clusters']} clusters, selected {s['selected']}")


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Option(help="Pipeline YAML (see `xinstruct run --explain`).")] = None,
    lang: Annotated[Optional[list[str]], typer.Option(help="Languages (repeat); overrides the config.")] = None,
    stage: Annotated[Optional[list[str]], typer.Option(help="Stages to run (repeat); overrides the config.")] = None,
    limit: option_type(GenerateConfig, "limit", override=True, help_prefix="generate.limit override: ") = None,
    target: option_type(diversify_mod.DiversifyConfig, "target", override=True,
                        help_prefix="diversify.target override: ") = None,
    explain: Annotated[bool, typer.Option(help="Print every config key with its default and help, then exit.")] = False,
    db: DbOption = None,
) -> None:
    """Run ingest -> generate -> refine -> diversify from one config; rerun the same command to resume.

    Example: xinstruct run --config pipeline.yaml --lang sw --lang ur
    """
    if explain:
        from ..ingest import IngestConfig

        typer.echo("pipeline:\n" + describe(pipeline.PipelineConfig))
        for name, cls in [("ingest", IngestConfig), ("generate", GenerateConfig), ("refine", refine_mod.RefineConfig),
                          ("diversify", diversify_mod.DiversifyConfig)]:
            typer.echo(f"{name}:\n{describe(cls)}")
        return
    cfg, base = pipeline.load_config(config)
    cfg = override(cfg, languages=lang or None, stages=stage or None)
    cfg.validate()  # a mistyped --stage is an error, not a stage silently skipped
    if limit is not None:
        cfg.generate = {**cfg.generate, "limit": limit}
    if target is not None:
        cfg.diversify = {**cfg.diversify, "target": target}
    if "ingest" in cfg.stages and cfg.inputs:  # a run that ingests may create the database
        with new_or_existing_store(db) as store:
            summary = pipeline.run(store, cfg, base, echo=typer.echo)
    else:
        summary = pipeline.run(open_store(db), cfg, base, echo=typer.echo)
    typer.echo("summary: " + ", ".join(f"{s} {v['seconds']} s" for s, v in summary.items()))


@app.command()
def feedback(
    train: Annotated[bool, typer.Option("--train/--no-train", help="Also train a new generator version on the accepted and edited pairs.")] = False,
    epochs: Annotated[Optional[float], typer.Option(min=0.01, help="Training epochs (with --train), at least 0.01.")] = None,
    base: Annotated[Optional[str], typer.Option(help="Base model for training (default: embedded Gemma 3 270M).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write this run's generator pairs and refinement examples "
                                                     "as JSON Lines files in this folder (they are always stored in "
                                                     "the database).")] = None,
    db: DbOption = None,
) -> None:
    """Turn review decisions into a calibrated evaluator, refinement examples and (with --train) a new generator.

    The data is stored in the database, where training and refinement read it; --out also writes it as files.

    Example: xinstruct feedback --train
    """
    from .. import feedback as feedback_mod

    train_cfg = None
    if train:
        from ..train import TrainConfig

        train_cfg = override(TrainConfig(), epochs=epochs, base=base)
    result = feedback_mod.feedback(open_store(db), train=train, train_config=train_cfg, out_dir=out)
    for lang, fit in result["languages"].items():
        auc = "n/a" if fit["auc"] is None else f"{fit['auc']:.3f}"
        typer.echo(f"{lang}: calibration {'fitted' if fit['calibration'] else 'skipped'} on {fit['n_train']}, "
                   f"held-out {fit['n_test']}: ROC-AUC {auc}, threshold {fit['threshold']} {fit['note']}")
    typer.echo(f"calibration version: {result['calibration']}; refinement examples {result['refine_examples']}; "
               f"generator pairs {result['generator_pairs']}; new generator: {result['generator']}")
    for path in result["files"]:
        typer.echo(f"wrote {path}")


round_app = typer.Typer(help="Rounds of generation and review.", no_args_is_help=True)
app.add_typer(round_app, name="round")


@round_app.command("new")
def round_new(
    run_pipeline: Annotated[bool, typer.Option("--run/--no-run", help="Generate, refine and diversify for unused documents now.")] = True,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Documents per language to generate for.")] = None,
    target: Annotated[Optional[int], typer.Option(min=1, help="Candidates to select per language.")] = None,
    db: DbOption = None,
) -> None:
    """Start the next round with the latest generator and calibrated evaluator, and run it on unused documents.

    Example: xinstruct round new --limit 200
    """
    from .. import feedback as feedback_mod

    store = open_store(db)
    info = feedback_mod.new_round(store)
    typer.echo(f"round {info['round']}: generator {info['generator'] or 'embedded default'}, "
               f"evaluator {info['evaluator'] or 'uncalibrated'}")
    if run_pipeline:
        cfg = pipeline.PipelineConfig(stages=["generate", "refine", "diversify"],
                                      generate={"model": info["generator"], **({"limit": limit} if limit else {})},
                                      diversify={"target": target} if target else {})
        pipeline.run(store, cfg, Path.cwd(), echo=typer.echo)


@round_app.command("report")
def round_report(db: DbOption = None) -> None:
    """Per round and language: reviewed, acceptance and edit rates, edit distance, evaluator-human AUC, versions.

    Example: xinstruct round report
    """
    from .. import feedback as feedback_mod
    from ._app import echo_table

    echo_table(feedback_mod.round_report(open_store(db)))
