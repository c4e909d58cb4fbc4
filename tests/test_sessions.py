"""Login sessions that obey the user table, the lockout under concurrency, input limits, the session cookie routes and
the users CLI (disable, enable, delete). The real browser is in test_browser_sessions.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from conftest import session_token
from xinstruct import auth, websession
from xinstruct.auth import User
from xinstruct.cli import app
from xinstruct.errors import AccessDenied, InputError
from xinstruct.store import Store

PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    """Small Argon2 parameters: the same code paths, milliseconds per hash."""
    monkeypatch.setattr(auth, "_hasher", FAST)
    monkeypatch.setattr(auth, "_DUMMY_HASH", FAST.hash("dummy"))


def login(store, name="amina", password=PASSWORD) -> tuple[User, str]:
    user = auth.authenticate(store, name, password)
    assert user is not None
    return user, auth.start_session(store, user)


# ---------------------------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------------------------
def test_a_token_resumes_the_user_as_stored_now(file_store):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    user, token = login(file_store)
    assert auth.resume_session(file_store, token) == (User("amina", "reviewer", ("sw",)), None)
    with file_store.session() as tx:  # the table holds a hash of the token's id, never the token
        stored = " ".join(str(v) for row in tx.all("SELECT * FROM sessions") for v in row)
    assert token.split(".")[0] not in stored and token not in stored
    # languages edited in the store apply at the next page run, without a new login
    file_store.write(lambda tx: tx.execute("UPDATE users SET langs = 'sw,ur' WHERE name = 'amina'"))
    assert auth.resume_session(file_store, token)[0].langs == ("sw", "ur")


def test_forged_tampered_and_oversized_tokens_are_refused(file_store, tmp_path):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    _, token = login(file_store)
    sid, expiry, sig = token.split(".")
    later = str(int(expiry) + 10 * 365 * 86400)
    other = Store(tmp_path / "other.duckdb")  # another database: another key
    auth.add_user(other, "amina", PASSWORD, "admin", [])
    _, foreign = login(other)
    for bad in [f"{sid}.{later}.{sig}",                       # a longer expiry under the old signature
                f"{sid}.{expiry}.{'0' * 64}",                   # a made-up signature
                foreign,                                        # signed with another database's key
                token + "x" * 300,                              # too long: refused before anything else
                "", "a.b", None, {"name": "amina"}]:
        assert auth.resume_session(file_store, bad) == (None, "invalid"), bad
    assert auth.resume_session(file_store, token)[0] is not None
    assert (tmp_path / "xi.duckdb.session-key").stat().st_mode & 0o077 == 0  # the key is readable by its owner only


def test_expiry_idle_and_logout(file_store):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    _, token = login(file_store)
    now = auth.utcnow()
    assert auth.resume_session(file_store, token, now=now + auth.SESSION_LIFETIME + timedelta(seconds=5))[1] == "expired"
    assert auth.resume_session(file_store, token, now=now + auth.SESSION_IDLE + timedelta(minutes=1))[1] == "idle"
    # use keeps it alive: seen after 20 hours, still alive 20 hours later (40 h after login, past SESSION_IDLE)
    assert auth.resume_session(file_store, token, now=now + timedelta(hours=20))[0] is not None
    assert auth.resume_session(file_store, token, now=now + timedelta(hours=40))[0] is not None
    auth.end_session(file_store, token)
    assert auth.resume_session(file_store, token) == (None, "logged out")
    _, other = login(file_store)  # logging out of one tab leaves the user's other sessions alone
    assert auth.resume_session(file_store, other)[0] is not None


@pytest.mark.parametrize("change, why", [
    (lambda s: auth.add_user(s, "cora", PASSWORD + "-reset", "reviewer", ["ur"], replace=True), "changed"),
    (lambda s: auth.add_user(s, "cora", PASSWORD, "reviewer", ["ur"], replace=True), "changed"),  # demotion only
    (lambda s: auth.change_password(s, User("cora", "curator"), PASSWORD, PASSWORD + "-new"), "changed"),
    (lambda s: auth.set_disabled(s, "cora", True), "disabled"),
    (lambda s: auth.delete_user(s, "cora"), "deleted"),
], ids=["password-reset", "demotion", "own-password-change", "disable", "delete"])
def test_changes_to_the_user_end_their_sessions(file_store, change, why):
    auth.add_user(file_store, "cora", PASSWORD, "curator", [])
    user, token = login(file_store, "cora")
    assert auth.authorize(user, "curator", file_store).role == "curator"
    change(file_store)
    assert auth.resume_session(file_store, token) == (None, why)
    with pytest.raises(AccessDenied):  # a service function given the User read before the change refuses it too
        auth.authorize(user, "curator", file_store)
    assert why in auth.ENDED


def test_disabled_users_cannot_log_in_until_enabled(file_store):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    _, token = login(file_store)
    auth.set_disabled(file_store, "amina", True)
    with pytest.raises(AccessDenied, match="disabled"):
        auth.authenticate(file_store, "amina", PASSWORD)
    assert auth.authenticate(file_store, "amina", "wrong password") is None  # no hint about the account to guessers
    assert auth.get_user(file_store, "amina") is None
    auth.set_disabled(file_store, "amina", False)
    assert auth.authenticate(file_store, "amina", PASSWORD) is not None
    assert auth.resume_session(file_store, token)[0] is None  # enabling does not bring old sessions back
    with pytest.raises(InputError, match="no user 'nobody'"):
        auth.set_disabled(file_store, "nobody", True)
    with pytest.raises(InputError, match="no user 'nobody'"):
        auth.delete_user(file_store, "nobody")


def test_authorize_with_the_store_uses_the_current_role(file_store):
    auth.add_user(file_store, "cora", PASSWORD, "curator", [])
    stale = User("cora", "admin", (), 1)  # read with a role cora no longer holds (same credentials version)
    assert auth.authorize(stale, "admin").role == "admin"  # without the store: the object's word
    with pytest.raises(AccessDenied, match="needs the admin role"):
        auth.authorize(stale, "admin", file_store)
    with pytest.raises(AccessDenied, match="no longer exists"):
        auth.authorize(User("ghost", "admin", (), 1), "reviewer", file_store)


def test_service_functions_act_on_the_current_rights(file_store):
    """A bulk accept and an export by a curator demoted after their page was shown are refused by the service itself."""
    from conftest import add_candidates
    from xinstruct import curate, export, review
    from xinstruct.curate import CandidateFilter

    add_candidates(file_store, [{"lang": "sw", "text": f"Habari {i} " * 10, "instruction": f"Explain {i}", "score": 0.95}
                                for i in range(3)])
    auth.add_user(file_store, "cora", PASSWORD, "curator", [])
    cora, _ = login(file_store, "cora")
    auth.add_user(file_store, "cora", PASSWORD, "reviewer", ["sw"], replace=True)
    with pytest.raises(AccessDenied, match="changed; log in again"):
        curate.bulk_accept_above(file_store, CandidateFilter(), 0.9, cora)
    with pytest.raises(AccessDenied):
        export.export(file_store, export.ExportConfig(out=file_store.path.parent / "out"), user=cora)
    with pytest.raises(AccessDenied):
        review.next_item(file_store, cora)
    with file_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 0
    assert not (file_store.path.parent / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Lockout under concurrency
# ---------------------------------------------------------------------------------------------------------------------
class CountingHasher:
    """The fast hasher, counting verifications and how many run at once; each takes 30 ms so attempts overlap."""

    def __init__(self):
        self.lock = threading.Lock()
        self.verified = self.running = self.most = 0

    def verify(self, pw_hash, password):
        with self.lock:
            self.verified += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.03)
            return FAST.verify(pw_hash, password)
        finally:
            with self.lock:
                self.running -= 1

    def hash(self, password):
        return FAST.hash(password)

    def check_needs_rehash(self, pw_hash):
        return False


def _parallel(n, fn):
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run(i):
        barrier.wait()
        try:
            results.append(fn(i))
        except AccessDenied as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


def test_thirty_parallel_wrong_passwords_check_at_most_five(file_store, monkeypatch):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    counter = CountingHasher()
    monkeypatch.setattr(auth, "_hasher", counter)
    results, refused = _parallel(30, lambda i: auth.authenticate(file_store, "amina", f"guess {i}"))
    assert counter.verified <= auth.MAX_FAILURES and results == [None] * counter.verified
    assert len(refused) == 30 - counter.verified and all("too many failed logins" in r for r in refused)
    with file_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM login_attempts WHERE name = 'amina'") == counter.verified
    with pytest.raises(AccessDenied, match="too many failed logins"):
        auth.authenticate(file_store, "amina", PASSWORD)  # the right password: refused, unchecked, until the lock ends
    assert counter.verified <= auth.MAX_FAILURES
    later = auth.utcnow() + auth.LOCK_TIME + timedelta(seconds=5)
    assert auth.authenticate(file_store, "amina", PASSWORD, now=later) is not None


class GatedHasher(CountingHasher):
    """Each check waits (up to 10 s) until HASH_SLOTS checks run at once, then lingers 0.1 s: with the limit the most
    seen at once is exactly HASH_SLOTS however loaded the machine (no race on arrival times); without it, checks that
    arrive meanwhile would push the count above."""

    def __init__(self):
        super().__init__()
        self.full = threading.Condition(self.lock)

    def verify(self, pw_hash, password):
        with self.lock:
            self.verified += 1
            self.running += 1
            self.most = max(self.most, self.running)
            self.full.notify_all()
            self.full.wait_for(lambda: self.running >= auth.HASH_SLOTS or self.verified == 12, timeout=10)
        try:
            time.sleep(0.1)
            return FAST.verify(pw_hash, password)
        finally:
            with self.lock:
                self.running -= 1


def test_password_hashes_run_at_most_hash_slots_at_once(file_store, monkeypatch):
    counter = GatedHasher()
    monkeypatch.setattr(auth, "_hasher", counter)
    _parallel(12, lambda i: auth.authenticate(file_store, f"user{i}", "some password"))  # 12 names: no lockout
    assert counter.verified == 12
    assert counter.most == auth.HASH_SLOTS


def _guess(path, start, n):
    """In a process of its own: n wrong guesses for amina in n threads at once; (verified, refused)."""
    import xinstruct.auth as a

    a._hasher = CountingHasher()  # in the child: 30 ms per check, so attempts in its threads overlap
    store = Store(path, busy_timeout=120)
    results, refused = _parallel(n, lambda i: a.authenticate(store, "amina", f"guess {start + i}"))
    store.close()
    return a._hasher.verified, len(refused)


# Each guessing process is a fresh interpreter (not multiprocessing): a child forked from a process whose DuckDB threads
# hold a lock can wait on it forever (seen in CI, and the hung children then kept pytest from exiting), and a spawned
# one re-runs whatever script an earlier test left as __main__ (an AppTest leaves app.py).
GUESSER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import test_sessions
print(json.dumps(test_sessions._guess(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
"""


def test_parallel_wrong_passwords_from_several_processes_check_at_most_five(file_store):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    path = file_store.path
    file_store.close()
    here = str(Path(__file__).resolve().parent)
    procs = [subprocess.Popen([sys.executable, "-c", GUESSER, here, str(path), str(10 * k), "6"], stdout=subprocess.PIPE,
                              text=True) for k in range(5)]  # 5 processes x 6 threads = 30 wrong guesses at once
    try:
        counts = [json.loads(p.communicate(timeout=180)[0]) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs)
    verified = sum(v for v, _ in counts)
    assert verified <= auth.MAX_FAILURES and sum(r for _, r in counts) == 30 - verified
    store = Store(path)
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM login_attempts") == verified
    with pytest.raises(AccessDenied, match="too many failed logins"):
        auth.authenticate(store, "amina", PASSWORD)


def test_oversized_login_input_is_refused_before_anything_is_stored(file_store):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    huge = "n" * 3_000_000
    with pytest.raises(InputError, match="login name too long"):
        auth.authenticate(file_store, huge, PASSWORD)
    with pytest.raises(InputError, match="password too long"):
        auth.authenticate(file_store, "amina", "p" * (auth.MAX_PASSWORD + 1))
    with pytest.raises(InputError, match="enter your login name"):
        auth.authenticate(file_store, "   ", PASSWORD)
    with file_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM login_attempts") == 0
        assert tx.scalar("SELECT count(*) FROM login_guard") == 0
    with pytest.raises(InputError, match="password too long"):
        auth.add_user(file_store, "bob", "p" * (auth.MAX_PASSWORD + 1))


def test_the_login_form_refuses_a_huge_name_without_storing_it(file_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_input(key="xi_login_name").input("n" * 3_000_000)
    at.text_input(key="xi_login_password").input(PASSWORD)
    at.button[0].click().run()
    # Streamlit drops a value over the field's max_chars; authenticate() refuses one that gets through (test above)
    assert [e.value for e in at.error] in (["enter your login name"], [f"login name too long (3,000,000 characters) "
                                                                      f"(names have at most {auth.MAX_NAME})"])
    with file_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM login_attempts") == 0
        assert tx.scalar("SELECT count(*) FROM login_guard") == 0


# ---------------------------------------------------------------------------------------------------------------------
# The app: a token in the tab's state, re-validated on every run
# ---------------------------------------------------------------------------------------------------------------------
def test_the_app_logs_out_a_demoted_curator_at_the_next_run(file_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(file_store.path.parent)
    at = AppTest.from_file(str(ROOT / "pages" / "explore.py"), default_timeout=60)
    at.session_state["xi_session"] = session_token(User("cora", "curator"), file_store)
    at.run()
    assert not at.exception and [t.value for t in at.title] == ["Explore"]
    auth.add_user(file_store, "cora", PASSWORD, "reviewer", ["ur"], replace=True)  # demoted in a shell
    at.run()
    assert not at.exception and not at.title
    assert "Password" in [t.label for t in at.text_input]
    assert "Your password or role changed. Log in again." in [i.value for i in at.info]


def test_logout_ends_the_token_on_the_server(file_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    token = session_token(User("amina", "reviewer", ("sw",)), file_store)
    at = AppTest.from_file(str(ROOT / "pages" / "account.py"), default_timeout=60)  # (AppTest reruns only the page)
    at.session_state["xi_session"] = token
    at.run()
    at.button(key="xi_logout_account").click().run()
    assert "Password" in [t.label for t in at.text_input]
    assert auth.resume_session(file_store, token) == (None, "logged out")  # a copy of the token is worthless now


# ---------------------------------------------------------------------------------------------------------------------
# The cookie routes (serve.py)
# ---------------------------------------------------------------------------------------------------------------------
def _post(handler, body: bytes, headers: dict[str, str] | None = None):
    from starlette.requests import Request

    headers = {"host": "127.0.0.1:8501", **(headers or {})}
    scope = {"type": "http", "method": "POST", "path": "/xi/session", "scheme": "http", "query_string": b"",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    chunks = [body]

    async def receive():
        return {"type": "http.request", "body": chunks.pop() if chunks else b"", "more_body": False}

    return asyncio.run(handler(Request(scope, receive)))


def test_the_cookie_route_exchanges_a_one_time_code_for_an_httponly_cookie():
    code = websession.offer("the-token")
    response = _post(websession.set_cookie, code.encode(), {"origin": "http://127.0.0.1:8501"})
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("xi_session=the-token;")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert _post(websession.set_cookie, code.encode()).status_code == 403  # used once
    other = websession.offer("another-token")
    assert _post(websession.set_cookie, other.encode(), {"origin": "https://evil.example"}).status_code == 403
    assert _post(websession.set_cookie, b"x" * 5000).status_code == 413
    https = _post(websession.set_cookie, other.encode(), {"x-forwarded-proto": "https"})
    assert https.status_code == 204 and "Secure" in https.headers["set-cookie"]
    cleared = _post(websession.clear_cookie, b"")
    assert cleared.status_code == 204 and 'xi_session="";' in cleared.headers["set-cookie"]


def test_a_code_expires(monkeypatch):
    code = websession.offer("the-token")
    monkeypatch.setattr(websession.time, "monotonic", lambda: time.monotonic_ns() / 1e9 + websession.OFFER_SECONDS + 1)
    assert websession.take(code) is None


def test_the_login_script_carries_the_code_not_the_token():
    code = websession.offer("secret-token-value")
    script = websession.script(code=code)
    assert code in script and "secret-token-value" not in script and "/xi/session" in script


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------
def test_users_disable_enable_delete_cli(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    runner = CliRunner()
    assert runner.invoke(app, ["users", "add", "amina", "--langs", "sw", "--password", PASSWORD, "--db", db]).exit_code == 0
    store = Store(db)
    _, token = login(store)
    out = runner.invoke(app, ["users", "list", "--db", db])
    assert "active" in out.output and "amina" in out.output
    out = runner.invoke(app, ["users", "disable", "amina", "--db", db])
    assert out.exit_code == 0 and "disabled" in out.output
    assert auth.resume_session(store, token) == (None, "disabled")
    assert "disabled" in runner.invoke(app, ["users", "list", "--db", db]).output
    assert runner.invoke(app, ["users", "enable", "amina", "--db", db]).exit_code == 0
    assert auth.authenticate(store, "amina", PASSWORD) is not None
    out = runner.invoke(app, ["users", "delete", "amina", "--db", db], input="n\n")  # asks first
    assert out.exit_code != 0 and auth.get_user(store, "amina") is not None
    out = runner.invoke(app, ["users", "delete", "amina", "--yes", "--db", db])
    assert out.exit_code == 0 and auth.get_user(store, "amina") is None
    out = runner.invoke(app, ["users", "disable", "amina", "--db", db])
    assert isinstance(out.exception, InputError) and "no user 'amina'" in str(out.exception)
