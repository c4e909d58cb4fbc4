"""No traceback reaches a browser, and nobody waits in silence.

* A corrupt database file: every page, run through the router (app.py) as an admin (who has every page), shows a clear
  message and a Retry button, never an exception; when the file is good again the next run (what Retry does) shows the
  page.
* Another process holds the file: a page run waits at most XINSTRUCT_BUSY_TIMEOUT in all (one budget for the whole run,
  however many store calls it makes), then shows the message and Retry.
* store.waiting reports what a wait is for, with the seconds, while it lasts.
* .streamlit/config.toml turns Streamlit's own error details off.
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import add_candidates, session_token
from test_store import hold
from xinstruct import review
from xinstruct.auth import User
from xinstruct.errors import StoreBusy
from xinstruct.store import Store, waiting

ROOT = Path(__file__).resolve().parents[1]
ADMIN = User("ada", "admin")
PAGES = ["review", "guidelines", "account", "overview", "explore", "reviewers", "adjudicate", "export", "rounds"]
MESSAGE = "The database is not available right now"


@pytest.fixture
def router_runs(monkeypatch):
    """Make AppTest run app.py on every run, as the server does once app.py has called st.navigation.

    (AppTest 1.67 resets PagesManager.uses_pages_directory before each run; with a pages/ folder beside app.py that
    makes switch_page run the page file alone, skipping the router and its error handling.)"""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def db(file_store, monkeypatch, tmp_path, router_runs):
    ids = add_candidates(file_store, [{"lang": "sw", "text": f"Habari za leo {i} " * 10, "instruction": f"Explain {i}",
                                       "label": "good", "score": 0.5} for i in range(3)])
    review.record_decision(file_store, ids[0], User("amina", "reviewer", ("sw",)), "accept")
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(tmp_path)
    global TOKEN
    TOKEN = session_token(ADMIN, file_store)  # a login session, stored before any test copies or corrupts the file
    return file_store


TOKEN = None


def app_at(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["xi_session"] = TOKEN
    at.run()
    if name != "review":
        at.switch_page(f"pages/{name}.py").run()
    return at


def shows_store_error(at: AppTest) -> bool:
    return any(MESSAGE in e.value for e in at.error) and any(b.label == "Retry" for b in at.button)


def review_page_error(at: AppTest) -> bool:  # the Review page's own handling (pages/review.py)
    return any("Could not load the next item" in e.value for e in at.error) and any(
        b.label == "Try again" for b in at.button)


def test_streamlit_shows_no_error_details():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["client"]["showErrorDetails"] == "none"


def test_a_corrupt_database_gives_every_page_a_message_and_retry(db):
    path = Path(db.path)
    db.close()
    good = path.read_bytes()
    for name in PAGES:
        at = app_at(name)
        assert not at.exception and not shows_store_error(at), name  # the page works on the good file
        db.close()
        path.write_bytes(os.urandom(4096) + good[4096:])  # the header is garbage: DuckDB refuses the file
        at = app_at(name)  # a fresh session (the Review page keeps its shown item in the session)
        assert not at.exception, (name, at.exception)
        assert shows_store_error(at) or (name == "review" and review_page_error(at)), (
            name, [e.value for e in at.error])
        assert "not a valid DuckDB database file" in " ".join(e.value.replace("\\", "") for e in at.error)
        path.write_bytes(good)
        at.run()  # what Retry does: the page is back
        assert not at.exception and not shows_store_error(at), name


def test_a_page_waits_one_budget_in_all_then_says_so(db, monkeypatch):
    at = app_at("overview")  # curator page: several store calls per run
    assert not at.exception and not shows_store_error(at)
    monkeypatch.setenv("XINSTRUCT_BUSY_TIMEOUT", "2")
    db.close()
    proc = hold(str(db.path), 20)
    try:
        start = time.monotonic()
        at.run()
        took = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    assert not at.exception and shows_store_error(at)
    assert "may wait 2 s in all" in " ".join(e.value.replace("\\", "") for e in at.error)
    assert took < 8, f"the page run took {took:.1f} s: each store call waited its own timeout"


def test_waits_are_reported_with_what_and_how_long(tmp_path):
    path = tmp_path / "w.duckdb"
    Store(path).close()
    proc = hold(str(path), 2.5)
    reports: list[tuple[str | None, float]] = []
    store = Store(path, busy_timeout=60, migrate=False)
    with waiting(60, lambda what, s: reports.append((what, s))):
        store.set_setting("waited", "yes")
    assert proc.wait(30) == 0
    waits = [r for r in reports if r[0] is not None]
    assert waits, "a wait of seconds was never reported"
    assert all("held by another process" in what and f"PID {proc.pid}" in what for what, _ in waits), waits
    assert [s for _, s in waits] == sorted(s for _, s in waits) and waits[-1][1] >= 1.0
    assert reports[-1][0] is None  # the end of the wait is reported too (the app clears its message)


def test_one_budget_covers_every_call_of_a_thread(tmp_path):
    path = tmp_path / "b.duckdb"
    Store(path).close()
    store = Store(path, busy_timeout=60, migrate=False)  # each call alone would wait up to 60 s
    proc = hold(str(path), 30)
    try:
        start = time.monotonic()
        with waiting(1.5), pytest.raises(StoreBusy, match="in all"):
            for _ in range(5):
                store.get_setting("x")
        assert time.monotonic() - start < 5
    finally:
        proc.kill()
        proc.wait()
