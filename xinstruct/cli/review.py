"""Review commands: users and the review app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import auth
from ..errors import InputError
from ._app import DbOption, app, echo_table, open_store

users_app = typer.Typer(help="Reviewer, curator and admin accounts.\n\nExample: xinstruct users add amina --role reviewer "
                             "--langs sw", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name (no spaces; for single sign-on, the e-mail address).")],
    role: Annotated[str, typer.Option(help="reviewer | curator | admin.")] = "reviewer",
    langs: Annotated[str, typer.Option(help="Comma-separated languages the user reviews, e.g. sw,ur; empty = all.")] = "",
    password: Annotated[Optional[str], typer.Option(help="Password (asked for, hidden, when not given).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Reset an existing user's password, role and languages.")] = False,
    db: DbOption = None,
) -> None:
    """Create a user who can log in to the review app (--replace: reset one; their sessions end).

    Example: xinstruct users add amina --role reviewer --langs sw,ur
    """
    if password is None:
        password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    user = auth.add_user(open_store(db), name, password, role, langs, replace=replace)
    typer.echo(f"user {user.name} saved: role {user.role}, languages {','.join(user.langs) or 'all'}")


@users_app.command("list")
def users_list(db: DbOption = None) -> None:
    """List users with their role, languages, status and open sessions (never passwords).

    Example: xinstruct users list
    """
    echo_table(auth.list_users(open_store(db)))


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="Login name.")], db: DbOption = None) -> None:
    """Stop a user from logging in; their open sessions end at their next click. Their decisions stay.

    Example: xinstruct users disable amina
    """
    auth.set_disabled(open_store(db), name, True)
    typer.echo(f"user {name} disabled; their sessions have ended (`xinstruct users enable {name}` undoes it)")


@users_app.command("enable")
def users_enable(name: Annotated[str, typer.Argument(help="Login name.")], db: DbOption = None) -> None:
    """Let a disabled user log in again (with their old password).

    Example: xinstruct users enable amina
    """
    auth.set_disabled(open_store(db), name, False)
    typer.echo(f"user {name} enabled")


@users_app.command("delete")
def users_delete(
    name: Annotated[str, typer.Argument(help="Login name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Delete a user; their sessions end at once. Their decisions stay in the log under their name.

    Example: xinstruct users delete amina --yes
    """
    store = open_store(db)
    if not yes:
        typer.confirm(f"Delete user {name}? (their decisions stay in the log)", abort=True)
    auth.delete_user(store, name)
    typer.echo(f"user {name} deleted")


@app.command("app")
def run_app(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 to serve a network).")] = "localhost",
    db: DbOption = None,
) -> None:
    """Start the review app (streamlit run serve.py: app.py plus its session cookie) on this database.

    Example: xinstruct app --port 8501 --db store/xinstruct.duckdb
    """
    script = Path(__file__).resolve().parents[2] / "serve.py"
    if not script.exists():
        raise InputError(f"serve.py not found at {script}", hint="run from a checkout of xinstruct (serve.py is at its root)")
    env = dict(os.environ)
    if db is not None:
        env["XINSTRUCT_DB"] = str(db.resolve())
    open_store(Path(env["XINSTRUCT_DB"]) if env.get("XINSTRUCT_DB") else None)  # create / migrate before serving
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
           "--server.address", host, "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    typer.echo(f"serving {script.name} on http://{host}:{port} with database {env.get('XINSTRUCT_DB', 'store/xinstruct.duckdb')}")
    raise typer.Exit(subprocess.call(cmd, env=env, cwd=script.parent))
