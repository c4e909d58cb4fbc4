"""Review commands: users, review settings and the review app."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import auth, review
from ..errors import InputError
from ..langs import LANGS
from ._app import DbOption, app, echo_table, new_or_existing_store, open_store

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
    with new_or_existing_store(db) as store:
        user = auth.add_user(store, name, password, role, langs, replace=replace)
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


review_app = typer.Typer(help="How items are reviewed: k and lease length per language.\n\n"
                              "Example: xinstruct review settings --lang sw --k 2", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("settings")
def review_settings(
    lang: Annotated[Optional[list[str]], typer.Option(
        "--lang", help="Language code to change or show (repeat for several; default all ten).")] = None,
    k: Annotated[Optional[int], typer.Option(
        "--k", min=1, max=review.MAX_K, help="Reviews needed: completed reviews that must agree before an item is final.",
        show_default=False)] = None,
    lease_minutes: Annotated[Optional[int], typer.Option(
        "--lease-minutes", min=1, max=review.MAX_LEASE_MINUTES,
        help="How long an item shown to a reviewer stays reserved for them.", show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Show the review settings of each language, or change them (--k, --lease-minutes) for the --lang given.

    Runs as the local operator (recorded as local:<user>). A new k applies at once to items still waiting for reviews;
    a new lease length to the next items shown. The review app's Reviewers page has the same form for curators.

    Example: xinstruct review settings
    Example: xinstruct review settings --lang sw --lang ur --k 2 --lease-minutes 15
    """
    langs = [code.strip().lower() for code in lang or []]
    unknown = [code for code in langs if code not in LANGS]
    if unknown:  # before anything is changed: all the languages given, or none
        raise InputError(f"unknown language code {unknown[0]!r}", hint=f"use some of {', '.join(LANGS)}")
    store = open_store(db)
    if k is not None or lease_minutes is not None:
        if not langs:
            raise InputError("which language? --k and --lease-minutes change the languages given with --lang",
                             hint="add --lang xx, once per language")
        operator = auth.User(f"local:{getpass.getuser()}", "admin")
        for code in langs:
            review.set_review_settings(store, operator, code, k=k, lease_minutes=lease_minutes)
    shown = review.review_settings(store)
    echo_table([{"lang": s.lang, "k": s.k, "lease_minutes": f"{s.lease_minutes:g}",
                 "set_by": s.updated_by or ("" if s.stored else "(default)")}
                for s in shown if not langs or s.lang in langs])


@app.command("app")
def run_app(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(
        help="Address to listen on: localhost (this machine only) or 0.0.0.0 (every network interface, so that "
             "phones and laptops on the local network can open http://<this machine's address>:PORT).")] = "localhost",
    db: DbOption = None,
) -> None:
    """Start the review app (streamlit run serve.py: app.py plus its session cookie) on this database.

    The command becomes the Streamlit server (exec): stopping it (Ctrl-C, or SIGTERM to its PID) stops the server.

    Example: xinstruct app --port 8501 --db store/xinstruct.duckdb
    Example (reviewers' phones on the local network): xinstruct app --host 0.0.0.0 --port 8501
    """
    script = Path(__file__).resolve().parents[2] / "serve.py"
    if not script.exists():
        raise InputError(f"serve.py not found at {script}", hint="run from a checkout of xinstruct (serve.py is at its root)")
    env = dict(os.environ)
    store = open_store(db)  # refuses a database that does not exist; brings an old one to the latest schema
    env["XINSTRUCT_DB"] = str(store.path)
    store.close()  # the server opens the file itself (DuckDB admits one process per file)
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
           "--server.address", host, "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    typer.echo(f"serving {script.name} on http://{host}:{port} with database {store.path}")
    for url in lan_urls(host, port):
        typer.echo(f"  from other devices on the network: {url}")
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.chdir(script.parent)
        os.execve(sys.executable, cmd, env)  # same PID: a signal to `xinstruct app` reaches the server itself
    raise typer.Exit(_run_forwarding_signals(cmd, env, script.parent))


def lan_urls(host: str, port: int) -> list[str]:
    """Addresses other devices can use when the app listens on every interface (best effort, no packet is sent)."""
    if host not in ("0.0.0.0", "::"):
        return []
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # UDP connect only picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return []
    return [] if address.startswith("127.") else [f"http://{address}:{port}"]


def _run_forwarding_signals(cmd: list[str], env: dict, cwd: Path) -> int:
    """Where exec is not available: run the server as a child, pass SIGTERM/SIGINT on and wait for it to end."""
    import signal

    child = subprocess.Popen(cmd, env=env, cwd=cwd)

    def forward(signum, _frame) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # forwarded above; keep waiting for the server to finish
            continue
