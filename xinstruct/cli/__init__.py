"""`xinstruct` command line. Each area registers its commands on the shared typer app."""

from __future__ import annotations

import sys

import typer

from ..errors import XInstructError
from ._app import app
from . import core, curation, generation, review, export, quality  # noqa: F401,E402  (register commands)


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
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
