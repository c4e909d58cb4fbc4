"""Users, passwords, roles, login sessions and the login lockout for the review app.

Passwords are hashed with Argon2id (argon2-cffi), time cost 2, 19 MiB, one lane (OWASP's recommended minimum; ~65 ms per
hash on this 2-core machine, against ~300 ms and 64 MiB for argon2-cffi's defaults), at most `HASH_SLOTS` at once per
process, and never logged or stored in clear. Older hashes keep working and are rehashed at the next login.

**Lockout.** Each login name has a row in `login_guard`. Before a password is checked, the attempt claims a slot in one
transaction (`_claim`); at most `MAX_FAILURES` slots per name per `FAILURE_WINDOW` (a fixed window from its first
claim). A wrong password keeps its slot and, once the slots are used up, locks the name for `LOCK_TIME`; a right one frees
them. So however many attempts run at once, in threads or processes, at most `MAX_FAILURES` passwords are checked per name
and window; attempts during a lock are refused unchecked and unrecorded. `login_attempts` keeps the history.
Unknown names are locked the same way (no hint that a name exists). Names longer than `MAX_NAME`, passwords longer than
`MAX_PASSWORD` and tokens longer than `MAX_TOKEN` are refused before anything is stored or hashed.

**Sessions.** A login starts a row in `sessions` and returns a token `<random id>.<expiry>.<HMAC-SHA256>`, signed with
a key kept beside the database (`<db>.session-key`, created on first use, mode 600); the table holds only a hash of the
id. `resume_session` checks the signature, the expiry (`SESSION_LIFETIME`, and `SESSION_IDLE` without use), that the
session was not ended, and the user as stored now: still there, not disabled, and the same `cred_version` as at login
(a password reset, `users add --replace`, disabling or deleting a user bumps or ends it). It returns the user with the
role and languages stored now, so every page run acts on current rights.

Roles are ordered reviewer < curator < admin. A user's `langs` limit what they may review; empty means all languages.
Service functions call `authorize(user, role)` (no Streamlit); pages call `require(role)` which shows a login prompt or an
error and stops the script.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import AccessDenied, InputError, XInstructError
from .langs import LANGS
from .store import Store, default_db_path
from .store import users as user_rows

log = logging.getLogger(__name__)

ROLES = ("reviewer", "curator", "admin")
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=5)
LOCK_TIME = timedelta(minutes=5)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_NAME = 64
MAX_TOKEN = 256
SESSION_LIFETIME = timedelta(days=7)
SESSION_IDLE = timedelta(hours=24)
SEEN_EVERY = timedelta(minutes=5)  # last_seen is written at most this often (not on every click)
ARGON2 = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
HASH_SLOTS = 2  # password hashes computed at once per process (each takes 19 MiB and one core for ~65 ms)

_hasher = PasswordHasher(**ARGON2)
_DUMMY_HASH = _hasher.hash("not a real password; evens out timing for unknown names")
_hash_slots = threading.BoundedSemaphore(HASH_SLOTS)
_guard_lock = threading.Lock()  # one claim at a time per process; the transaction makes it atomic across processes

ENDED = {  # why resume_session refused a token: shown on the login page
    "invalid": "Your session is not valid. Log in again.",
    "expired": "Your session expired. Log in again.",
    "idle": "Your session expired after a day without use. Log in again.",
    "logged out": "You logged out. Log in again.",
    "deleted": "Your account no longer exists. Ask an admin.",
    "disabled": "Your account was disabled. Ask an admin.",
    "changed": "Your password or role changed. Log in again.",
}


def utcnow() -> datetime:
    """Naive UTC timestamp, the form xinstruct stores in TIMESTAMP columns it fills itself (leases, login_attempts)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class User:
    name: str
    role: str = "reviewer"
    langs: tuple[str, ...] = field(default_factory=tuple)  # empty = all languages
    cred_version: int | None = field(default=None, compare=False)  # as stored when this User was read

    def can(self, role: str) -> bool:
        """True when this user's role is at least `role` (reviewer < curator < admin)."""
        return ROLES.index(self.role) >= ROLES.index(_check_role(role))

    def can_review(self, lang: str) -> bool:
        return not self.langs or lang in self.langs

    @property
    def lang_list(self) -> list[str]:
        """The languages this user reviews (all ten when `langs` is empty)."""
        return list(self.langs) if self.langs else list(LANGS)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    return role


def _check_langs(langs) -> tuple[str, ...]:
    if isinstance(langs, str):
        langs = [p for p in langs.replace(" ", "").split(",") if p]
    out = []
    for code in langs or []:
        code = code.strip().lower()
        if code not in LANGS:
            raise InputError(f"unknown language code {code!r}", hint=f"use some of {', '.join(LANGS)}; empty = all")
        if code not in out:
            out.append(code)
    return tuple(out)


def authorize(user: User | None, role: str = "reviewer", store: Store | None = None) -> User:
    """Raise AccessDenied unless `user` is a logged-in user with at least `role`. For service functions.

    With `store`, a user read from the store (a login, a session: `cred_version` set) is checked against the store as it
    is now: still there, not disabled, the same credentials version, and the role it holds now. Returns that user.
    (A User built in code, without a credentials version, is taken at its word: scripts and tests.)
    """
    if not isinstance(user, User):
        raise AccessDenied("you are not logged in; log in first")
    if store is not None and user.cred_version is not None:
        row = user_rows.user(store, user.name)
        if row is None:
            raise AccessDenied(f"user {user.name!r} no longer exists")
        fresh = _user(row)
        if row.disabled:
            raise AccessDenied(f"user {user.name!r} is disabled (ask an admin)")
        if fresh.cred_version != user.cred_version:
            raise AccessDenied(f"the password or role of {user.name!r} changed; log in again")
        user = fresh
    if user.role not in ROLES:
        raise AccessDenied(f"user {user.name!r} has an unknown role {user.role!r}")
    if not user.can(role):
        raise AccessDenied(f"this needs the {role} role; {user.name} is a {user.role} (ask an admin)")
    return user


# -- password hashing: bounded, so a burst of logins cannot take every core and a lot of memory -------------------------
def _hash(password: str) -> str:
    with _hash_slots:
        return _hasher.hash(password)


def _verify(pw_hash: str, password: str) -> bool:
    with _hash_slots:
        try:
            return _hasher.verify(pw_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _check_password(password, who: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InputError(f"password too short for {who}", hint=f"use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"password too long for {who} ({len(password):,} characters)",
                         hint=f"use at most {MAX_PASSWORD} characters")
    return password


def _login_name(name) -> str:
    """A login name as typed, refused (before anything is stored) when empty or longer than any user name can be."""
    if not isinstance(name, str):
        raise InputError("the login name must be text")
    if len(name) > MAX_NAME:
        raise InputError(f"login name too long ({len(name):,} characters)", hint=f"names have at most {MAX_NAME}")
    name = name.strip()
    if not name:
        raise InputError("enter your login name")
    return name


# -- user management ---------------------------------------------------------------------------------------------------
def add_user(store: Store, name: str, password: str, role: str = "reviewer", langs: list[str] | str | None = None,
             *, replace: bool = False) -> User:
    """Create a user (or, with `replace`, reset an existing one's password, role and languages, ending their sessions)."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or any(ch.isspace() for ch in name):
        raise InputError(f"invalid user name {name[:80]!r}", hint=f"1-{MAX_NAME} characters, no spaces")
    _check_role(role)
    codes = _check_langs(langs)
    _check_password(password, name)
    pw_hash = _hash(password)
    version = user_rows.save_user(store, name, pw_hash, role, ",".join(codes), replace=replace, now=utcnow())
    log.info("user %s saved with role %s, languages %s", name, role, ",".join(codes) or "all")
    return User(name, role, codes, version)


def set_disabled(store: Store, name: str, disabled: bool) -> User:
    """Disable (ending every session of the user at once) or enable a user. Decisions they made stay in the log."""
    user = _user(user_rows.set_disabled(store, name, disabled, now=utcnow()))
    log.info("user %s %s", name, "disabled" if disabled else "enabled")
    return user


def delete_user(store: Store, name: str) -> None:
    """Delete a user and end their sessions. Their decisions stay in the (append-only) log under their name."""
    user_rows.delete_user(store, name, now=utcnow())
    log.info("user %s deleted", name)


def get_user(store: Store, name: str) -> User | None:
    """The user as stored now, or None when there is no such user or the user is disabled."""
    row = user_rows.user(store, name)
    return None if row is None or row.disabled else _user(row)


def list_users(store: Store) -> list[dict]:
    rows = user_rows.list_users(store, now=utcnow())
    for r in rows:
        r["langs"] = r["langs"] or "all"
    return rows


def _user(row: user_rows.UserRow) -> User:
    return User(row.name, row.role, tuple(p for p in row.langs.split(",") if p), row.cred_version)


# -- login -----------------------------------------------------------------------------------------------------------
def locked_until(store: Store, name: str, *, now: datetime | None = None) -> datetime | None:
    """When the lock on `name` ends, or None when a login attempt for it would be checked now."""
    now = now or utcnow()
    return _refusal(user_rows.guard(store, name), now)


def _refusal(row, now: datetime) -> datetime | None:
    """Given a login_guard row, when the refusal of a new attempt ends (None: the attempt may go ahead)."""
    if row is None:
        return None
    start, failures, until = row
    if until is not None and until > now:
        return until
    if until is None and start + FAILURE_WINDOW > now and failures >= MAX_FAILURES:
        return start + FAILURE_WINDOW  # every slot is claimed by attempts still being checked
    return None


def _claim(store: Store, name: str, now: datetime) -> None:
    """Claim one of the name's attempt slots, atomically (one transaction); AccessDenied when none is left."""
    with _guard_lock:
        refused = user_rows.claim_attempt(store, name, now, window=FAILURE_WINDOW, refusal=_refusal)
    if refused is not None:
        minutes = max(1, round((refused - now).total_seconds() / 60))
        raise AccessDenied(f"too many failed logins for {name!r}; try again in about {minutes} minute(s)")


def _settle(store: Store, name: str, ok: bool, now: datetime) -> None:
    """Record a checked attempt: a success frees the name's slots, a failure that used the last slot locks the name."""
    with _guard_lock:
        user_rows.settle_attempt(store, name, ok, now, lock_until=now + LOCK_TIME, max_failures=MAX_FAILURES)


def authenticate(store: Store, name: str, password: str, *, now: datetime | None = None) -> User | None:
    """The user when name and password match, else None.

    Raises AccessDenied while the name is locked (or the account is disabled, after a right password) and InputError
    for a name or password no account can have (too long, empty name), before anything is stored.
    """
    now = now or utcnow()
    name = _login_name(name)
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise InputError("password too long" if isinstance(password, str) else "the password must be text",
                         hint=f"passwords have at most {MAX_PASSWORD} characters")
    _claim(store, name, now)
    ok = False
    try:
        row = user_rows.user(store, name, with_hash=True)
        ok = _verify(row.password_hash if row else _DUMMY_HASH, password) and row is not None
    finally:
        _settle(store, name, ok, now)  # a failure while checking keeps the slot: it counts as a wrong guess
    if not ok:
        log.info("failed login for %s", name)
        return None
    if row.disabled:
        raise AccessDenied(f"the account {name!r} is disabled; ask an admin")
    if _hasher.check_needs_rehash(row.password_hash):
        user_rows.rehash_password(store, name, row.password_hash, _hash(password))
    return _user(row)


def change_password(store: Store, user: User, old: str, new: str) -> User:
    """Change a user's own password; every session of theirs ends (start a new one for the current tab)."""
    if authenticate(store, user.name, old) is None:
        raise AccessDenied("the current password is wrong")
    _check_password(new, user.name)
    version = user_rows.set_password(store, user.name, _hash(new), now=utcnow())
    return User(user.name, user.role, user.langs, version)


# -- sessions ----------------------------------------------------------------------------------------------------------
_KEYS: dict[str, bytes] = {}
_KEYS_LOCK = threading.Lock()


def _session_key(store: Store) -> bytes:
    """The HMAC key for this database's tokens: `<db>.session-key` beside the file, made on first use (mode 600)."""
    ident = str(store.path) if not store.memory else f"memory:{id(store)}"
    with _KEYS_LOCK:
        if ident in _KEYS:
            return _KEYS[ident]
        if store.memory:
            key = secrets.token_bytes(32)
        else:
            path = Path(f"{store.path}.session-key")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                key = bytes.fromhex(path.read_text().strip())
            else:
                key = secrets.token_bytes(32)
                with os.fdopen(fd, "w") as f:
                    f.write(key.hex())
            if len(key) < 32:
                raise InputError(f"session key {path} is damaged", hint="delete it; everyone then logs in again")
        _KEYS[ident] = key
        return key


def _sign(store: Store, body: str) -> str:
    return hmac.new(_session_key(store), body.encode(), hashlib.sha256).hexdigest()


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start_session(store: Store, user: User, *, now: datetime | None = None) -> str:
    """Start a login session for `user` (as read at login) and return its token."""
    now = now or utcnow()
    sid = secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME
    body = f"{sid}.{int(expires.replace(tzinfo=timezone.utc).timestamp())}"
    token = f"{body}.{_sign(store, body)}"
    if not user_rows.add_session(store, _sid_hash(sid), user.name, user.cred_version, now, expires):
        raise AccessDenied(f"no user {user.name!r}")
    return token


def _parse_token(store: Store, token) -> tuple[str, datetime] | None:
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 2:
        return None
    sid, expiry, sig = token.split(".")
    if not hmac.compare_digest(sig, _sign(store, f"{sid}.{expiry}")):
        return None
    try:
        return sid, datetime.fromtimestamp(int(expiry), timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return None


def resume_session(store: Store, token, *, now: datetime | None = None) -> tuple[User | None, str | None]:
    """(the user as stored now, None) for a live session token, else (None, why: a key of ENDED)."""
    now = now or utcnow()
    parsed = _parse_token(store, token)
    if parsed is None:
        return None, "invalid"
    sid, expiry = parsed
    if expiry <= now:
        return None, "expired"
    row = user_rows.session(store, _sid_hash(sid))
    if row is None:
        return None, "invalid"
    if row.user is None:
        return None, "deleted"
    if row.user.disabled:
        return None, "disabled"
    if row.user.cred_version != row.cred_version:
        return None, "changed"
    if row.revoked_at is not None:
        return None, "logged out"
    if row.expires_at <= now:
        return None, "expired"
    if row.last_seen + SESSION_IDLE <= now:
        return None, "idle"
    if row.last_seen + SEEN_EVERY <= now:
        user_rows.touch_session(store, _sid_hash(sid), now)
    return _user(row.user), None


def end_session(store: Store, token) -> None:
    """Log out: the token is refused from now on, wherever it was copied to."""
    parsed = _parse_token(store, token)
    if parsed is not None:
        user_rows.end_session(store, _sid_hash(parsed[0]), utcnow())


# -- Streamlit side (imported lazily so service code and the CLI never need a running app) -----------------------------
TOKEN_KEY = "xi_session"  # session_state key that holds this tab's session token


def get_store() -> Store:
    """The app's Store (a cached resource per database path: $XINSTRUCT_DB or store/xinstruct.duckdb)."""
    return _cached_store(str(default_db_path()))


_STORE_CACHE = None


def _cached_store(path: str) -> Store:
    global _STORE_CACHE
    if _STORE_CACHE is None:
        import streamlit as st

        _STORE_CACHE = st.cache_resource(show_spinner=False)(_open_store)
    return _STORE_CACHE(path)


def _open_store(path: str) -> Store:
    from .store import env_busy_timeout

    return Store(path, busy_timeout=env_busy_timeout())


def _cookie_token() -> str | None:
    """The session cookie the browser sent when this tab connected (set by serve.py's /xi/session route)."""
    import streamlit as st

    from . import websession

    try:
        value = st.context.cookies.get(websession.COOKIE)
    except Exception:  # no browser connection (AppTest, bare mode)
        return None
    return value if isinstance(value, str) and len(value) <= MAX_TOKEN else None


def current_user() -> User | None:
    """The logged-in user as stored now, re-read on every call (every page run); None when not logged in.

    The token comes from this tab's session state or, after a reload or in a new tab, from the session cookie. A token
    that no longer holds (logged out, expired, password or role changed, disabled, deleted) clears this tab's state
    and leaves the reason for the login page.
    """
    import streamlit as st

    ss = st.session_state
    token = ss.get(TOKEN_KEY)
    if token is None:
        token = _cookie_token()
        if token is not None and token == ss.get("xi_dead_token"):
            return None  # this tab already found that cookie dead
    if token is None:
        ss.pop("user", None)
        return None
    user, why = resume_session(get_store(), token)
    if user is None:
        _forget()
        ss["xi_dead_token"] = token
        ss["xi_ended"] = ENDED.get(why, ENDED["invalid"])
        ss["xi_clear_cookie"] = True
        return None
    ss[TOKEN_KEY] = token
    ss["user"] = user
    return user


def _forget() -> None:
    """Clear this tab's state (the previous user's items, filters and exports are theirs, not the next user's)."""
    import streamlit as st

    for key in list(st.session_state.keys()):
        del st.session_state[key]


def begin(store: Store, user: User, *, keep_state: bool = False) -> None:
    """Start a session for `user` in this tab and ask the browser to keep it in an HttpOnly cookie.

    The tab's state is cleared (a new login starts clean) unless `keep_state` (the same user's new session after a
    password change)."""
    import streamlit as st

    from . import websession

    token = start_session(store, user)
    if not keep_state:
        _forget()
    st.session_state[TOKEN_KEY] = token
    st.session_state["user"] = user
    st.session_state["xi_cookie_code"] = websession.offer(token)


def logout() -> None:
    """End this tab's session on the server (the token is refused from now on) and clear the cookie."""
    import streamlit as st

    token = st.session_state.get(TOKEN_KEY) or _cookie_token()
    if token is not None:
        end_session(get_store(), token)
    _forget()
    st.session_state["xi_dead_token"] = token
    st.session_state["xi_clear_cookie"] = True


def cookie_sync() -> None:
    """Hand a new session to the browser's cookie, or clear a dead one (a few lines of script; nothing visible)."""
    import streamlit as st

    from . import websession

    code = st.session_state.pop("xi_cookie_code", None)
    clear = st.session_state.pop("xi_clear_cookie", False)
    script = websession.script(code=code) if code else websession.script(clear=True) if clear else None
    if script:
        st.html(script, unsafe_allow_javascript=True)


def _oidc_configured() -> bool:
    import streamlit as st

    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def _oidc_user(store: Store) -> User | None:
    """With an [auth] section in secrets.toml, a user logged in through st.login whose e-mail is a known user name."""
    import streamlit as st

    try:
        if not st.user.is_logged_in:
            return None
        email = st.user.get("email") or ""
    except Exception:
        return None
    return get_user(store, email) if email and len(email) <= MAX_NAME else None


def login_form(store: Store) -> User | None:
    """Render the login form; on success start a session in this tab and rerun. Shows nothing else."""
    import streamlit as st

    cookie_sync()
    if _oidc_configured():
        user = _oidc_user(store)
        if user is not None:
            begin(store, user)
            st.rerun()
        st.button("Log in with single sign-on", on_click=st.login, key="xi_sso")
    ended = st.session_state.pop("xi_ended", None)
    st.subheader("Log in")
    if ended:
        st.info(ended)
    with st.form("xi_login", clear_on_submit=False):
        name = st.text_input("Name", key="xi_login_name", autocomplete="username", max_chars=MAX_NAME)
        password = st.text_input("Password", type="password", key="xi_login_password", autocomplete="current-password",
                                 max_chars=MAX_PASSWORD)
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        try:
            user = authenticate(store, name, password)
        except XInstructError as exc:
            st.error(str(exc))
            return None
        if user is None:
            st.error("Wrong name or password.")
            return None
        begin(store, user)
        st.rerun()
    return None


def signed_in() -> User | None:
    """For the router: the current user, or None when not logged in. A store error goes up to app.py's one handler
    (a message and Retry, nobody logged out for it); any other error checking the session is shown here."""
    import streamlit as st

    from .errors import StoreError
    from .render import md_escape

    try:
        return current_user()
    except StoreError:
        raise
    except XInstructError as exc:  # do not log anyone out for it
        st.error(f"Could not check your login: {md_escape(exc)}")
        st.button("Try again", key="xi_auth_retry", type="primary")
        st.stop()


def require(role: str = "reviewer") -> User:
    """For pages: the logged-in user with at least `role`; otherwise a login prompt or an error, then st.stop()."""
    import streamlit as st

    user = signed_in()
    if user is None:
        login_form(get_store())
        st.stop()
    if not user.can(role):
        from . import render

        st.error(f"This page needs the {role} role; you are logged in as {render.md_escape(user.name)} ({user.role}).")
        st.stop()
    return user
