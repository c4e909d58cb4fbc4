"""The typer application and what every command shares. Commands are thin wrappers over package functions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError, XInstructError
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


def db_path(db: Path | None) -> Path:
    """The database a command works on: --db, else $XINSTRUCT_DB, else store/xinstruct.duckdb."""
    return Path(db or default_db_path())


def open_store(db: Path | None, *, create: bool = False) -> Store:
    """Open the command's database. Only commands that fill a new store (`migrate`, `ingest`, `run` with inputs,
    `users add`, via `create=True`) may create it; every other command refuses a file that does not exist, so a
    mistyped --db never leaves an empty database behind."""
    path = db_path(db)
    if not create and not path.exists():
        raise InputError(
            "no such database", path=str(path),
            hint="check --db / $XINSTRUCT_DB; a new database is created by `xinstruct ingest FILES --lang xx --db PATH` "
                 "or `xinstruct migrate --db PATH`")
    return Store(path, busy_timeout=env_busy_timeout())


@contextmanager
def new_or_existing_store(db: Path | None) -> Iterator[Store]:
    """Open (or create) the database for a command that fills it. If the command fails and the database did not exist
    before it, the new file is removed again when nothing was stored in it (a refused ingest leaves no file behind)."""
    path = db_path(db).absolute()
    existed = path.exists()
    new_dirs = [p for p in [path.parent, *path.parent.parents] if not p.exists()]  # folders the Store will create
    store = open_store(db, create=True)
    try:
        yield store
    except (XInstructError, KeyboardInterrupt, typer.Abort):
        if not existed:
            _remove_if_empty(store, new_dirs)
        raise


def _remove_if_empty(store: Store, new_dirs: list[Path]) -> None:
    try:
        if store.has_data():
            return
    except XInstructError:
        return  # cannot tell: keep the file
    store.close()
    for leftover in (Path(store.path), Path(f"{store.path}.wal")):
        leftover.unlink(missing_ok=True)
    for folder in new_dirs:  # innermost first
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (something else is there now): keep it and its parents


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
