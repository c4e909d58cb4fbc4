"""`xinstruct` command line. Each area registers its commands on the shared typer app."""

from __future__ import annotations

import sys

import typer

from ..errors import XInstructError
from ._app import app
from . import core, curation, generation, review, export, quality, judging, instruct, compare  # noqa: F401,E402  (register commands)


def main() -> None:
    try:
        app(standalone_mode=False)
    except XInstructError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (bad option values): typer >= 0.20 raises its own click's exceptions
        import click

        usage_error = (click.ClickException, getattr(typer, "TyperException", click.ClickException))
        if isinstance(exc, usage_error) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        raise
