"""Users, passwords and roles for the review app.

Passwords are hashed with Argon2id (argon2-cffi) and never logged or stored in clear. Logins are rate limited through the
`login_attempts` table: `MAX_FAILURES` failed attempts for one name within `FAILURE_WINDOW` lock that name for `LOCK_TIME`
(attempts during the lock are refused without checking the password and are not recorded, so the lock always ends).

Roles are ordered reviewer < curator < admin. A user's `langs` limit what they may review; empty means all languages.
Service functions call `authorize(user, role)` (no Streamlit); pages call `require(role)` which shows a login prompt or an
error and stops the script.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import AccessDenied, InputError
from .langs import LANGS
from .store import Store, default_db_path

log = logging.getLogger(__name__)

ROLES = ("reviewer", "curator", "admin")
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=5)
LOCK_TIME = timedelta(minutes=5)
MIN_PASSWORD = 8

_hasher = PasswordHasher()  # Argon2id with argon2-cffi's recommended parameters
_DUMMY_HASH = _hasher.hash("not a real password; evens out timing for unknown names")


def utcnow() -> datetime:
    """Naive UTC timestamp, the form xinstruct stores in TIMESTAMP columns it fills itself (leases, login_attempts)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class User:
    name: str
    role: str = "reviewer"
    langs: tuple[str, ...] = field(default_factory=tuple)  # empty = all languages

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


def authorize(user: User | None, role: str = "reviewer") -> User:
    """Raise AccessDenied unless `user` is a logged-in user with at least `role`. For service functions."""
    if not isinstance(user, User):
        raise AccessDenied("you are not logged in; log in first")
    if user.role not in ROLES:
        raise AccessDenied(f"user {user.name!r} has an unknown role {user.role!r}")
    if not user.can(role):
        raise AccessDenied(f"this needs the {role} role; {user.name} is a {user.role} (ask an admin)")
    return user


# -- user management ---------------------------------------------------------------------------------------------------
def add_user(store: Store, name: str, password: str, role: str = "reviewer", langs: list[str] | str | None = None,
             *, replace: bool = False) -> User:
    """Create a user (or, with `replace`, reset an existing one's password, role and languages)."""
    name = (name or "").strip()
    if not name or len(name) > 64 or any(ch.isspace() for ch in name):
        raise InputError(f"invalid user name {name!r}", hint="1-64 characters, no spaces")
    _check_role(role)
    codes = _check_langs(langs)
    if len(password or "") < MIN_PASSWORD:
        raise InputError(f"password too short for {name}", hint=f"use at least {MIN_PASSWORD} characters")
    pw_hash = _hasher.hash(password)

    def write(tx):
        exists = tx.scalar("SELECT count(*) FROM users WHERE name = ?", [name])
        if exists and not replace:
            raise InputError(f"user {name!r} already exists", hint="pick another name or pass replace=True (--replace)")
        if exists:
            tx.execute("UPDATE users SET password_hash = ?, role = ?, langs = ? WHERE name = ?",
                       [pw_hash, role, ",".join(codes), name])
        else:
            tx.execute("INSERT INTO users (name, password_hash, role, langs) VALUES (?, ?, ?, ?)",
                       [name, pw_hash, role, ",".join(codes)])

    store.write(write)
    log.info("user %s saved with role %s, languages %s", name, role, ",".join(codes) or "all")
    return User(name, role, codes)


def get_user(store: Store, name: str) -> User | None:
    with store.session() as tx:
        row = tx.one("SELECT name, role, langs FROM users WHERE name = ?", [name])
    return _user(row) if row else None


def list_users(store: Store) -> list[dict]:
    with store.session() as tx:
        rows = tx.dicts("SELECT name, role, langs, created_at FROM users ORDER BY name")
    for r in rows:
        r["langs"] = r["langs"] or "all"
    return rows


def _user(row) -> User:
    name, role, langs = row
    return User(name, role, tuple(p for p in (langs or "").split(",") if p))


# -- login -----------------------------------------------------------------------------------------------------------
def locked_until(store: Store, name: str, *, now: datetime | None = None) -> datetime | None:
    """When the lock on `name` ends, or None when it is not locked."""
    now = now or utcnow()
    with store.session() as tx:
        last_ok = tx.scalar("SELECT max(attempted_at) FROM login_attempts WHERE name = ? AND ok", [name])
        fails = [r[0] for r in tx.all(
            "SELECT attempted_at FROM login_attempts WHERE name = ? AND NOT ok AND attempted_at > ? "
            "ORDER BY attempted_at DESC LIMIT ?",
            [name, last_ok or datetime(1970, 1, 1), MAX_FAILURES])]
    if len(fails) < MAX_FAILURES or fails[0] - fails[-1] > FAILURE_WINDOW:
        return None
    until = fails[0] + LOCK_TIME
    return until if until > now else None


def authenticate(store: Store, name: str, password: str, *, now: datetime | None = None) -> User | None:
    """The user when name and password match, else None. Raises AccessDenied while the name is locked."""
    now = now or utcnow()
    name = (name or "").strip()
    until = locked_until(store, name, now=now)
    if until is not None:
        minutes = max(1, round((until - now).total_seconds() / 60))
        raise AccessDenied(f"too many failed logins for {name!r}; try again in about {minutes} minute(s)")
    with store.session() as tx:
        row = tx.one("SELECT name, role, langs, password_hash FROM users WHERE name = ?", [name])
    ok = False
    try:
        ok = _hasher.verify(row[3] if row else _DUMMY_HASH, password or "") and row is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    store.write(lambda tx: tx.execute("INSERT INTO login_attempts (name, ok, attempted_at) VALUES (?, ?, ?)",
                                      [name, ok, now]))
    if not ok:
        log.info("failed login for %s", name)
        return None
    if _hasher.check_needs_rehash(row[3]):
        new_hash = _hasher.hash(password)
        store.write(lambda tx: tx.execute("UPDATE users SET password_hash = ? WHERE name = ?", [new_hash, name]))
    return _user(row[:3])


def change_password(store: Store, user: User, old: str, new: str) -> None:
    if authenticate(store, user.name, old) is None:
        raise AccessDenied("the current password is wrong")
    if len(new or "") < MIN_PASSWORD:
        raise InputError("new password too short", hint=f"use at least {MIN_PASSWORD} characters")
    new_hash = _hasher.hash(new)
    store.write(lambda tx: tx.execute("UPDATE users SET password_hash = ? WHERE name = ?", [new_hash, user.name]))


# -- Streamlit side (imported lazily so service code and the CLI never need a running app) -----------------------------
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


def current_user() -> User | None:
    import streamlit as st

    user = st.session_state.get("user")
    return user if isinstance(user, User) else None


def logout() -> None:
    import streamlit as st

    for key in list(st.session_state.keys()):
        del st.session_state[key]


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
    return get_user(store, email) if email else None


def login_form(store: Store) -> User | None:
    """Render the login form; on success put the user in the session and rerun. Shows nothing else."""
    import streamlit as st

    if _oidc_configured():
        user = _oidc_user(store)
        if user is not None:
            st.session_state["user"] = user
            st.rerun()
        st.button("Log in with single sign-on", on_click=st.login, key="xi_sso")
    st.subheader("Log in")
    with st.form("xi_login", clear_on_submit=False):
        name = st.text_input("Name", key="xi_login_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="xi_login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        try:
            user = authenticate(store, name, password)
        except AccessDenied as exc:
            st.error(str(exc))
            return None
        if user is None:
            st.error("Wrong name or password.")
            return None
        st.session_state["user"] = user
        st.session_state.pop("xi_login_password", None)
        st.rerun()
    return None


def require(role: str = "reviewer") -> User:
    """For pages: the logged-in user with at least `role`; otherwise a login prompt or an error, then st.stop()."""
    import streamlit as st

    user = current_user()
    if user is None:
        login_form(get_store())
        st.stop()
    if not user.can(role):
        from . import render

        st.error(f"This page needs the {role} role; you are logged in as {render.md_escape(user.name)} ({user.role}).")
        st.stop()
    return user
