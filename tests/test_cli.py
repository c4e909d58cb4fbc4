"""The command line as a user meets it: every number is checked before anything is written, a mistyped --db is refused
instead of becoming a new empty database, a refused ingest leaves no file, messages are whole, and `xinstruct app`
takes its server down with it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import typing
from pathlib import Path

import psutil
import pytest
import typer.main
from conftest import ROOT, add_candidates
from typer.testing import CliRunner

from xinstruct.cli import app
from xinstruct.store import Store

runner = CliRunner()


# ---------------------------------------------------------------------------------------------------------------------
# Every numeric option of every command has a range, enforced before the command runs
# ---------------------------------------------------------------------------------------------------------------------
def _commands(group=None, prefix=()) -> list[tuple[tuple[str, ...], object]]:
    """(words, command) for every leaf command of the typer app, sub-apps included (`round new`, `users add`...)."""
    group = group or typer.main.get_command(app)
    out = []
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append(((*prefix, name), cmd))
    return out


def _number_type(param) -> type | None:
    """int or float when the option takes a number (Optional[...] unwrapped), else None. Typer >= 0.20 keeps the
    annotation on the parameter; older typer builds a click type (IntRange / FloatRange when bounded)."""
    import click

    if isinstance(getattr(param, "type", None), (click.types.IntParamType, click.types.FloatParamType)):
        return int if isinstance(param.type, click.types.IntParamType) else float
    hint = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is typing.Union else [hint]
    kinds = [a for a in args if a in (int, float)]
    return kinds[0] if len(kinds) == 1 and not getattr(param, "is_flag", False) else None


NUMERIC = [(words, p) for words, cmd in _commands() for p in cmd.params if _number_type(p)]


def _bounds(param) -> tuple:
    """(min, max) of a numeric option; None where it has none."""
    holder = param.type if hasattr(param, "type") and hasattr(param.type, "min") else param
    return getattr(holder, "min", None), getattr(holder, "max", None)


def _plain(output: str) -> str:
    """CLI output without the error box's frame and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def _required_args(cmd, tmp_path: Path) -> list[str]:
    """Values for the command's required arguments and options, so that only the number under test is wrong."""
    args: list[str] = []
    for p in cmd.params:
        if p.required and p.name != "db":
            value = str(tmp_path / f"given-{p.name}")
            args += [value] if not p.opts[0].startswith("-") else [p.opts[0], value]
    return args


def test_the_command_tree_is_found():
    names = {" ".join(words) for words, _ in _commands()}
    assert {"diversify", "refine", "generate", "app", "round new", "train generator", "export", "ingest"} <= names
    assert len(NUMERIC) >= 30  # every numeric option of every command is in the table below


@pytest.mark.parametrize("words, param", NUMERIC, ids=[f"{' '.join(w)} {p.opts[0]}" for w, p in NUMERIC])
def test_every_numeric_option_has_a_range_and_refuses_values_outside_it(words, param, tmp_path):
    kind = _number_type(param)
    lo, hi = _bounds(param)
    assert lo is not None, (
        f"`xinstruct {' '.join(words)} {param.opts[0]}` takes a number but declares no minimum: add min=... "
        "(and max=... where there is one) to its typer.Option")
    cmd = dict(_commands())[words]
    bad = [lo - 1 if kind is int else lo - max(abs(lo), 1.0)]
    if hi is not None:
        bad.append(hi + 1)
    db = tmp_path / "missing.duckdb"
    for value in bad:
        result = runner.invoke(app, [*words, param.opts[0], str(value), *_required_args(cmd, tmp_path), "--db", str(db)]
                               if any(p.name == "db" for p in cmd.params) else
                               [*words, param.opts[0], str(value), *_required_args(cmd, tmp_path)])
        text = _plain(result.output)
        assert result.exit_code == 2, (value, text)
        assert f"Invalid value for '{param.opts[0]}'" in text, text
        # typer >= 0.20: "Input should be greater than or equal to 1"; click: "0 is not in the range x>=1"
        assert "than or equal to" in text or "not in the range" in text, text
    assert list(tmp_path.iterdir()) == [], "a refused option must not write anything"


def _cli_main(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point (`xinstruct ...`) in a subprocess: exit codes and stderr as a user sees them."""
    return subprocess.run([sys.executable, "-c", "from xinstruct.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_diversify_target_zero_is_refused_and_the_selection_is_kept(file_store):
    ids = add_candidates(file_store, [
        {"lang": "sw", "text": f"Maandishi ya mfano namba {i}.", "instruction": f"Describe item {i}.", "label": "good",
         "score": 0.9, "selected": i == 0, "cluster": i} for i in range(3)])
    file_store.close()
    for target in ("0", "-1"):
        result = _cli_main(["diversify", "--target", target, "--db", str(file_store.path)])
        assert result.returncode == 2 and "Invalid value for '--target'" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    with file_store.session() as tx:
        assert tx.all("SELECT id, selected, cluster FROM candidates ORDER BY id") == sorted(
            [(cid, i == 0, i) for i, cid in enumerate(ids)])


def test_a_pipeline_config_out_of_range_is_refused_before_anything_is_written(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text("inputs: [demo]\ndiversify: {target: 0}\n", encoding="utf-8")
    db = tmp_path / "new.duckdb"
    result = _cli_main(["run", "--config", str(config), "--db", str(db)])
    assert result.returncode == 2 and "diversify: target must be at least 1 (got 0)" in result.stderr, result.stderr
    assert not db.exists()


def test_diversify_refuses_target_zero_through_the_python_api_too(store):
    from xinstruct import diversify
    from xinstruct.errors import ConfigError

    add_candidates(store, [{"lang": "sw", "text": "Maandishi.", "instruction": "Describe it.", "selected": True}])
    with pytest.raises(ConfigError, match="target must be at least 1"):
        diversify.run(store, diversify.DiversifyConfig(target=0))
    with store.session() as tx:
        assert tx.scalar("SELECT selected FROM candidates") is True


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_a_bad_busy_timeout_is_refused_with_a_message(value, file_store):
    file_store.close()
    result = _cli_main(["stats", "--db", str(file_store.path)], env={"XINSTRUCT_BUSY_TIMEOUT": value})
    assert result.returncode == 2 and f"XINSTRUCT_BUSY_TIMEOUT='{value}' is not a number of seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_refine_rounds_below_zero_is_refused():
    result = runner.invoke(app, ["refine", "--rounds", "-1", "--db", "nowhere.duckdb"])
    assert result.exit_code == 2 and "Invalid value for '--rounds'" in _plain(result.output)


# ---------------------------------------------------------------------------------------------------------------------
# A mistyped --db is refused; only commands that fill a store create one
# ---------------------------------------------------------------------------------------------------------------------
READ_ONLY = [
    ["stats"], ["backup", "{tmp}/bk"], ["users", "list"], ["round", "report"], ["refine"], ["diversify"],
    ["generate", "--backend", "fake"], ["feedback"], ["round", "new", "--no-run"], ["export", "--out", "{tmp}/out"],
    ["app", "--port", "1"], ["run", "--stage", "generate"], ["train", "generator", "--max-steps", "1"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=[" ".join(a[:2]) for a in READ_ONLY])
def test_commands_refuse_a_database_that_does_not_exist(args, tmp_path):
    db = tmp_path / "typo.duckdb"
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--db", str(db)])
    assert result.exit_code != 0
    message = str(result.exception)
    assert str(db) in message and "no such database" in message and "xinstruct migrate --db" in message
    assert list(tmp_path.iterdir()) == [], "nothing may be created, not even an empty database"


def test_migrate_creates_a_database(tmp_path):
    db = tmp_path / "new.duckdb"
    assert runner.invoke(app, ["migrate", "--db", str(db)]).exit_code == 0
    assert db.exists()
    assert runner.invoke(app, ["stats", "--db", str(db)]).exit_code == 0


def test_a_refused_ingest_leaves_no_database_file(tmp_path):
    bad_csv = tmp_path / "no_text.csv"
    bad_csv.write_text("title,url\nx,y\n", encoding="utf-8")
    db = tmp_path / "db" / "new.duckdb"
    for files in ([tmp_path / "missing.jsonl"], [bad_csv]):
        result = _cli_main(["ingest", *map(str, files), "--lang", "sw", "--workers", "1", "--db", str(db)])
        assert result.returncode == 2 and str(files[0]) in result.stderr, result.stderr
        assert not db.exists() and not Path(f"{db}.wal").exists()
        assert not db.parent.exists(), "the folder created for the database is removed too"


def test_a_refused_ingest_into_an_existing_database_keeps_it(file_store, tmp_path):
    add_candidates(file_store, [{"lang": "sw", "text": "Maandishi ya mfano.", "instruction": "Describe it."}])
    file_store.close()
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing.jsonl"), "--lang", "sw",
                                 "--db", str(file_store.path)])
    assert result.exit_code != 0 and file_store.path.exists()
    with file_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM documents") == 1


def test_malformed_json_message_is_whole(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "a\tb"}\n{"text": \n', encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(f), "--lang", "sw", "--workers", "1", "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "malformed JSON" in ln]
    assert len(lines) == 2
    assert f"{f}:1: malformed JSON: Invalid control character at column 12" in lines[0]
    assert "must be written as \\t or \\n" in lines[0]
    assert f"{f}:2: malformed JSON: Expecting value at the end of the line;" in lines[1]
    assert all(ln.rstrip().endswith("(each line must be one JSON object)") for ln in lines)


# ---------------------------------------------------------------------------------------------------------------------
# `xinstruct app` is the server: stopping it stops the server
# ---------------------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_xinstruct_app_stops_the_server(tmp_path, sig):
    db = tmp_path / "app.duckdb"
    Store(db).close()
    port = _free_port()
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from xinstruct.cli import main; main()", "app", "--port", str(port),
         "--host", "127.0.0.1", "--db", str(db)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "STREAMLIT_SERVER_HEADLESS": "true",
             "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"})
    try:
        deadline = time.monotonic() + 120
        while not _port_open(port):
            assert proc.poll() is None, (tmp_path / "app.log").read_text()
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.3)
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        os.kill(proc.pid, sig)  # the PID the user started, as `kill PID` or Ctrl-C would
        proc.wait(60)
        deadline = time.monotonic() + 30
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _port_open(port), "the server still listens after `xinstruct app` was stopped"
        alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f"processes left running: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_app_help_says_how_phones_reach_it():
    out = runner.invoke(app, ["app", "--help"]).output
    assert "0.0.0.0" in out and "--host" in out


def test_usage_errors_show_a_message_not_a_traceback():
    result = _cli_main(["generate", "--batch-size", "0", "--db", "nowhere.duckdb"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--batch-size'" in result.stderr


# ---------------------------------------------------------------------------------------------------------------------
# The CLI ranges and the stage configs' validate() agree (a pipeline YAML gets the same rule as the command line)
# ---------------------------------------------------------------------------------------------------------------------
def _config_classes():
    from xinstruct.diversify import DiversifyConfig
    from xinstruct.generate import GenerateConfig
    from xinstruct.ingest import IngestConfig
    from xinstruct.refine import RefineConfig
    from xinstruct.train import TrainConfig

    return {("ingest",): IngestConfig, ("generate",): GenerateConfig, ("refine",): RefineConfig,
            ("diversify",): DiversifyConfig, ("train", "generator"): TrainConfig}


CLI_STRICTER = {("generate", "limit"), ("refine", "limit")}  # the CLI refuses 0 (a run that does nothing); configs allow it
OTHER_FIELDS = {("ingest", "max_chars"): {"min_chars": 0}}  # max_chars must also stay above min_chars
SHARED = [(words, p) for words, p in NUMERIC if words in _config_classes()
          and p.name in {f.name for f in __import__("dataclasses").fields(_config_classes()[words])}]


@pytest.mark.parametrize("words, param", SHARED, ids=[f"{' '.join(w)} {p.opts[0]}" for w, p in SHARED])
def test_cli_range_and_config_validation_agree(words, param):
    from xinstruct.errors import ConfigError

    cls = _config_classes()[words]
    other = OTHER_FIELDS.get((words[0], param.name), {})
    lo, hi = _bounds(param)
    cls(**other, **{param.name: lo}).validate()  # the CLI's minimum is a valid config value
    if hi is not None:
        cls(**other, **{param.name: hi}).validate()
    if (words[0], param.name) in CLI_STRICTER:
        return
    below = lo - 1 if _number_type(param) is int else lo - max(abs(lo), 1.0)
    with pytest.raises(ConfigError):
        cls(**other, **{param.name: below}).validate()


def test_where_exec_is_unavailable_the_signal_is_forwarded_to_the_server(tmp_path):
    """The non-POSIX path of `xinstruct app`: the server runs as a child; SIGTERM to the parent reaches it."""
    code = ("import os, sys; from pathlib import Path; from xinstruct.cli.review import _run_forwarding_signals; "
            "sys.exit(_run_forwarding_signals([sys.executable, '-c', 'import time; time.sleep(600)'], dict(os.environ), "
            "Path('.')))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not psutil.Process(proc.pid).children():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        child = psutil.Process(proc.pid).children()[0]
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)  # the parent waits for the server, then exits
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.poll() is None:
            proc.kill()
