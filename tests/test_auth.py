"""Users, password hashing, login rate limiting, roles; the users CLI."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from xinstruct import auth
from xinstruct.auth import User
from xinstruct.cli import app
from xinstruct.errors import AccessDenied, InputError

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    """Argon2id with small parameters: the same code paths, milliseconds instead of ~0.5 s per hash on this machine."""
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", fast)
    monkeypatch.setattr(auth, "_DUMMY_HASH", fast.hash("dummy"))


def test_add_and_authenticate(store):
    user = auth.add_user(store, "amina", PASSWORD, "reviewer", ["sw", "ur"])
    assert user == User("amina", "reviewer", ("sw", "ur"))
    assert auth.authenticate(store, "amina", PASSWORD) == user
    assert auth.authenticate(store, "amina", "wrong password") is None
    assert auth.authenticate(store, "nobody", PASSWORD) is None
    assert auth.authenticate(store, "amina", "") is None
    assert auth.get_user(store, "amina") == user
    with store.session() as tx:
        assert tx.all("SELECT name, ok FROM login_attempts ORDER BY attempted_at") == [
            ("amina", True), ("amina", False), ("nobody", False), ("amina", False)]


def test_password_not_stored_in_clear(store, caplog):
    caplog.set_level(logging.DEBUG)
    auth.add_user(store, "juha", PASSWORD, "curator", "fi")
    auth.authenticate(store, "juha", PASSWORD)
    auth.authenticate(store, "juha", PASSWORD + "x")
    with store.session() as tx:
        stored = tx.scalar("SELECT password_hash FROM users WHERE name = 'juha'")
        everything = " ".join(str(v) for table in ("users", "login_attempts", "settings")
                              for row in tx.all(f"SELECT * FROM {table}") for v in row)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in everything
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in str(r) for r in auth.list_users(store))
    assert "password_hash" not in auth.list_users(store)[0]


def test_rate_limit_locks_then_expires(store):
    auth.add_user(store, "amina", PASSWORD, "reviewer", ["sw"])
    t0 = auth.utcnow()
    for i in range(auth.MAX_FAILURES):
        assert auth.authenticate(store, "amina", f"guess {i}", now=t0 + timedelta(seconds=i)) is None
    with pytest.raises(AccessDenied, match="too many failed logins"):
        auth.authenticate(store, "amina", PASSWORD, now=t0 + timedelta(seconds=10))  # even the right password
    assert auth.locked_until(store, "amina", now=t0 + timedelta(seconds=10)) is not None
    later = t0 + timedelta(seconds=4) + auth.LOCK_TIME + timedelta(seconds=1)
    assert auth.authenticate(store, "amina", PASSWORD, now=later) is not None
    # a success resets the count: four more failures do not lock
    for i in range(auth.MAX_FAILURES - 1):
        auth.authenticate(store, "amina", "nope", now=later + timedelta(seconds=i + 1))
    assert auth.authenticate(store, "amina", PASSWORD, now=later + timedelta(seconds=30)) is not None
    # the lock is per name
    auth.add_user(store, "baraka", PASSWORD, "reviewer", ["sw"])
    assert auth.authenticate(store, "baraka", PASSWORD, now=t0 + timedelta(seconds=10)) is not None


def test_failures_spread_out_do_not_lock(store):
    auth.add_user(store, "amina", PASSWORD, "reviewer", ["sw"])
    t0 = auth.utcnow()
    for i in range(auth.MAX_FAILURES + 2):
        auth.authenticate(store, "amina", "nope", now=t0 + i * timedelta(minutes=2))
    assert auth.authenticate(store, "amina", PASSWORD, now=t0 + timedelta(minutes=15)) is not None


def test_roles_and_authorize():
    reviewer, curator, admin = User("r", "reviewer", ("sw",)), User("c", "curator"), User("a", "admin")
    assert reviewer.can("reviewer") and not reviewer.can("curator") and not reviewer.can("admin")
    assert curator.can("reviewer") and curator.can("curator") and not curator.can("admin")
    assert admin.can("admin")
    assert auth.authorize(curator, "curator") is curator
    with pytest.raises(AccessDenied, match="curator"):
        auth.authorize(reviewer, "curator")
    with pytest.raises(AccessDenied, match="not logged in"):
        auth.authorize(None)
    with pytest.raises(AccessDenied):
        auth.authorize({"name": "a", "role": "admin"}, "reviewer")  # a forged session value is not a User
    with pytest.raises(AccessDenied):
        auth.authorize(User("x", "root"), "reviewer")
    assert reviewer.can_review("sw") and not reviewer.can_review("ur")
    assert curator.can_review("ur") and len(curator.lang_list) == 10  # empty langs = all languages


def test_add_user_validation(store):
    with pytest.raises(InputError, match="role"):
        auth.add_user(store, "x", PASSWORD, "owner", [])
    with pytest.raises(InputError, match="language"):
        auth.add_user(store, "x", PASSWORD, "reviewer", ["sw", "xx"])
    with pytest.raises(InputError, match="too short"):
        auth.add_user(store, "x", "short", "reviewer", [])
    with pytest.raises(InputError, match="name"):
        auth.add_user(store, "two words", PASSWORD, "reviewer", [])
    auth.add_user(store, "x", PASSWORD, "reviewer", [])
    with pytest.raises(InputError, match="already exists"):
        auth.add_user(store, "x", PASSWORD, "admin", [])
    auth.add_user(store, "x", PASSWORD + "2", "admin", "sw, ur", replace=True)
    assert auth.authenticate(store, "x", PASSWORD + "2") == User("x", "admin", ("sw", "ur"))


def test_change_password(store):
    user = auth.add_user(store, "amina", PASSWORD, "reviewer", ["sw"])
    with pytest.raises(AccessDenied):
        auth.change_password(store, user, "wrong", "new password 1")
    auth.change_password(store, user, PASSWORD, "new password 1")
    assert auth.authenticate(store, "amina", "new password 1") is not None


def test_users_cli(tmp_path):
    db = tmp_path / "cli.duckdb"
    runner = CliRunner()
    out = runner.invoke(app, ["users", "add", "amina", "--role", "reviewer", "--langs", "sw,ur", "--password", PASSWORD,
                              "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert "amina" in out.output and PASSWORD not in out.output
    out = runner.invoke(app, ["users", "add", "cora", "--role", "curator", "--db", str(db)],
                        input=f"{PASSWORD}\n{PASSWORD}\n")  # hidden prompt with confirmation
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["users", "list", "--db", str(db)])
    assert out.exit_code == 0
    assert "amina" in out.output and "sw,ur" in out.output and "cora" in out.output and "$argon2" not in out.output
    assert runner.invoke(app, ["users", "--help"]).exit_code == 0
    assert "Example" in runner.invoke(app, ["app", "--help"]).output
