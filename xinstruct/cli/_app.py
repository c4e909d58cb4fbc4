"""The typer application and what every command shares. Commands are thin wrappers over package functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..store import Store, default_db_path, env_busy_timeout

app = typer.Typer(
    name="xinstruct",
    help="Cross-lingual instruction data with native speakers in the loop.\n\n"
    "Example: xinstruct ingest corpus/sw.jsonl --lang sw && xinstruct stats",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DbOption = Annotated[
    Optional[Path],
    typer.Option("--db", help="DuckDB file (default: $XINSTRUCT_DB or store/xinstruct.duckdb).", show_default=False),
]


def open_store(db: Path | None) -> Store:
    return Store(db or default_db_path(), busy_timeout=env_busy_timeout())


def echo_table(rows: list[dict]) -> None:
    """Print a list of dicts as an aligned plain-text table."""
    if not rows:
        typer.echo("(nothing)")
        return
    cols = list(rows[0])
    width = {c: max(len(str(c)), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    typer.echo("  ".join(str(c).ljust(width[c]) for c in cols))
    for r in rows:
        typer.echo("  ".join(_fmt(r[c]).ljust(width[c]) for c in cols))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)
