"""Store and ingest commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import ingest as ingest_mod
from ..store import Store
from ._app import DbOption, app, echo_table, new_or_existing_store, open_store
from .options import config_options


@app.command()
@config_options(ingest_mod.IngestConfig, "lang", "text_field", "url_field", "timestamp_field", "min_chars", "max_chars",
                "workers")
def ingest(
    cfg: ingest_mod.IngestConfig,
    paths: Annotated[list[Path], typer.Argument(help="Files: .jsonl .parquet .csv .txt, optionally .gz.")],
    db: DbOption = None,
) -> None:
    """Read native web text, identify its language, filter, deduplicate and store it.

    Every dropped document stays in the store with its reason. Re-ingesting a file adds nothing. Creates the database
    when it does not exist; a refused file leaves no new database behind.

    Example: xinstruct ingest data/sw.jsonl.gz --lang sw
    """
    cfg.validate()  # before the database is opened or created
    with new_or_existing_store(db) as store:
        stats = ingest_mod.ingest(store, paths, cfg)
    for issue in stats.issues[:50]:
        typer.echo(f"skipped: {issue}", err=True)
    if len(stats.issues) > 50:
        typer.echo(f"... and {len(stats.issues) - 50} more skipped lines", err=True)
    d = stats.as_dict()
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(d["dropped"].items())) or "none"
    typer.echo(f"read {d['read']} documents from {d['files']} file(s): kept {d['kept']}, dropped {sum(d['dropped'].values())} "
               f"({dropped}), already stored {d['already_stored']}, skipped lines {d['skipped_lines']}")


@app.command()
def stats(db: DbOption = None) -> None:
    """Documents per language by status and drop reason.

    Example: xinstruct stats
    """
    echo_table(ingest_mod.stats_table(open_store(db)))


@app.command()
def migrate(db: DbOption = None) -> None:
    """Create the database or bring it to the latest schema (also done by every command).

    Example: xinstruct migrate --db store/xinstruct.duckdb
    """
    store = open_store(db, create=True)
    typer.echo("migrations: " + ", ".join(store.migrations()))


@app.command()
def backup(out: Annotated[Path, typer.Argument(help="New, empty folder for the backup.")], db: DbOption = None) -> None:
    """Write a consistent copy of the whole store (Parquet per table) to a folder.

    Example: xinstruct backup backups/2026-11-27
    """
    folder = open_store(db).backup(out)
    typer.echo(f"backup written to {folder}")


@app.command()
def restore(
    folder: Annotated[Path, typer.Argument(help="A folder written by `xinstruct backup`.")],
    db: Annotated[Path, typer.Option("--db", help="New database file to create (must not exist).")],
) -> None:
    """Create a new database from a backup folder.

    Example: xinstruct restore backups/2026-11-27 --db store/restored.duckdb
    """
    store = Store.restore(folder, db)
    typer.echo(f"restored into {store.path}")
