"""Export command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import export as export_mod
from .. import vocab
from ._app import DbOption, app, open_store


@app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (created; must be empty unless --overwrite).")],
    status: Annotated[str, typer.Option(
        help=f"Review status: {vocab.ACCEPTED} (= {' + '.join(vocab.KEPT)}), "
             f"{', '.join(s for s in export_mod.STATUS_SETS if s != vocab.ACCEPTED)}; comma-separated for several."
    )] = vocab.ACCEPTED,
    lang: Annotated[Optional[list[str]], typer.Option(
        "--lang", help="Language code (repeat for several; default all).")] = None,
    min_score: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Only pairs with an evaluator score at least this (0-1).")] = None,
    format: Annotated[str, typer.Option("--format", help="jsonl (data.jsonl) | parquet (data.parquet) | hf (Parquet "
                                                          "shards that datasets.load_dataset(folder) opens).")] = "jsonl",
    template: Annotated[str, typer.Option(help="alpaca (instruction/input/output) | messages (chat turns).")] = "alpaca",
    no_answer_hint: Annotated[bool, typer.Option(
        "--no-answer-hint", help="Do not append ' Answer in <Language>.' to the instruction.")] = False,
    drafts: Annotated[bool, typer.Option(
        "--drafts", help="The instruction and response as generated, before any reviewer's edit.")] = False,
    shard_rows: Annotated[int, typer.Option(min=1, help="hf: rows per Parquet shard.")] = 500_000,
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory limit during the export (spills beyond).")] = "2GB",
    overwrite: Annotated[bool, typer.Option(help="Replace the files of an earlier export in --out.")] = False,
    db: DbOption = None,
) -> None:
    """Export reviewed pairs as training data, with a dataset card (README.md) and manifest.json.

    Rows are ordered by candidate id and carry the final (reviewed) instruction and response, language, source,
    score, label, cluster, model versions and the decision log. The same selection on the same store gives
    byte-identical data files. Runs as the local operator (recorded in the exports table as local:<user>).

    Example: xinstruct export --status accepted --lang sw --min-score 0.5 --format parquet --template messages --out exports/sw
    """
    cfg = export_mod.ExportConfig(
        out=out, status=status, langs=tuple(lang or ()), min_score=min_score, format=format, template=template,
        answer_hint=not no_answer_hint, shard_rows=shard_rows, memory_limit=memory_limit, overwrite=overwrite,
        drafts=drafts)
    result = export_mod.export(open_store(db), cfg)
    per_lang = ", ".join(f"{k} {v}" for k, v in result.per_lang.items()) or "none"
    typer.echo(f"{result} — per language: {per_lang}")
    typer.echo(f"card: {result.card}; manifest: {result.manifest}")
