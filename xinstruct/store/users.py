"""Users, login sessions and the login guard: the tables behind `xinstruct.auth`.

Each function is one transaction, so the checks auth relies on hold across processes: a user's credentials version
is read and bumped in the same transaction that changes the password or role and ends the user's sessions; a login
attempt claims its slot in the same transaction that reads the guard row. Policy (how many failures, how long a lock)
is auth's: it is passed in, never decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import InputError
from .engine import Store, Tx


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    langs: str  # comma-separated language codes; empty: all
    cred_version: int  # bumped by a password, role or language change and by disabling: ends older sessions
    disabled: bool
    password_hash: str | None = None  # read only by `user(..., with_hash=True)` (logins)


@dataclass(frozen=True)
class SessionRow:
    cred_version: int  # the user's version at login
    expires_at: datetime
    last_seen: datetime
    revoked_at: datetime | None
    user: UserRow | None  # None: the user was deleted


GuardRow = tuple[datetime, int, datetime | None]  # window_start, failures, locked_until

_USER = "name, role, langs, coalesce(cred_version, 1), coalesce(disabled, false)"


def _no_user(name: str) -> InputError:
    return InputError(f"no user {name!r}", hint="see `xinstruct users list`")


def _end_sessions(tx: Tx, name: str, now: datetime) -> None:
    tx.execute("UPDATE sessions SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL", [now, name])


# -- users ------------------------------------------------------------------------------------------------------------
def save_user(store: Store, name: str, password_hash: str, role: str, langs: str, *, replace: bool,
              now: datetime) -> int:
    """Create a user, or with `replace` reset an existing one (ending their sessions); the new cred_version."""
    def write(tx: Tx) -> int:
        version = tx.scalar("SELECT coalesce(cred_version, 1) FROM users WHERE name = ?", [name])
        if version is not None and not replace:
            raise InputError(f"user {name!r} already exists", hint="pick another name or pass replace=True (--replace)")
        if version is not None:
            tx.execute("UPDATE users SET password_hash = ?, role = ?, langs = ?, cred_version = ? WHERE name = ?",
                       [password_hash, role, langs, version + 1, name])
            _end_sessions(tx, name, now)
            return version + 1
        tx.execute("INSERT INTO users (name, password_hash, role, langs, cred_version, disabled) "
                   "VALUES (?, ?, ?, ?, 1, false)", [name, password_hash, role, langs])
        return 1

    return store.write(write)


def set_disabled(store: Store, name: str, disabled: bool, *, now: datetime) -> UserRow:
    """Disable (bumping cred_version and ending sessions) or enable a user; the user as stored after."""
    def write(tx: Tx) -> UserRow:
        row = tx.one(f"SELECT {_USER} FROM users WHERE name = ?", [name])
        if row is None:
            raise _no_user(name)
        version = row[3] + 1 if disabled else row[3]
        tx.execute("UPDATE users SET disabled = ?, cred_version = ? WHERE name = ?", [disabled, version, name])
        if disabled:
            _end_sessions(tx, name, now)
        return UserRow(row[0], row[1], row[2] or "", version, disabled)

    return store.write(write)


def delete_user(store: Store, name: str, *, now: datetime) -> None:
    """Delete a user and end their sessions (their decisions stay in the log under their name)."""
    def write(tx: Tx) -> None:
        if tx.scalar("SELECT count(*) FROM users WHERE name = ?", [name]) == 0:
            raise _no_user(name)
        _end_sessions(tx, name, now)
        tx.execute("DELETE FROM users WHERE name = ?", [name])

    store.write(write)


def user(store: Store, name: str, *, with_hash: bool = False) -> UserRow | None:
    """The user as stored now (disabled ones too), or None."""
    with store.session() as tx:
        row = tx.one(f"SELECT {_USER}, {'password_hash' if with_hash else 'NULL'} FROM users WHERE name = ?", [name])
    return None if row is None else UserRow(row[0], row[1], row[2] or "", row[3], bool(row[4]), row[5])


def list_users(store: Store, *, now: datetime) -> list[dict]:
    """Every user with status (active | disabled) and number of live sessions, by name."""
    with store.session() as tx:
        return tx.dicts("SELECT u.name, u.role, u.langs, CASE WHEN coalesce(u.disabled, false) THEN 'disabled' "
                        "ELSE 'active' END AS status, (SELECT count(*) FROM sessions s WHERE s.user_name = u.name "
                        "AND s.revoked_at IS NULL AND s.expires_at > ?) AS sessions, u.created_at "
                        "FROM users u ORDER BY u.name", [now])


def set_password(store: Store, name: str, password_hash: str, *, now: datetime) -> int:
    """Store a new password hash, bump cred_version and end the user's sessions; the new cred_version."""
    def write(tx: Tx) -> int:
        version = tx.scalar("SELECT coalesce(cred_version, 1) FROM users WHERE name = ?", [name])
        if version is None:
            raise _no_user(name)
        tx.execute("UPDATE users SET password_hash = ?, cred_version = ? WHERE name = ?",
                   [password_hash, version + 1, name])
        _end_sessions(tx, name, now)
        return version + 1

    return store.write(write)


def rehash_password(store: Store, name: str, old_hash: str, new_hash: str) -> None:
    """Replace a hash made with older parameters (sessions stay: the password did not change)."""
    store.write(lambda tx: tx.execute("UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?",
                                      [new_hash, name, old_hash]))


# -- the login guard --------------------------------------------------------------------------------------------------
def guard(store: Store, name: str) -> GuardRow | None:
    with store.session() as tx:
        return tx.one("SELECT window_start, failures, locked_until FROM login_guard WHERE name = ?", [name])


def claim_attempt(store: Store, name: str, now: datetime, *, window: timedelta,
                  refusal: Callable[[GuardRow | None, datetime], datetime | None]) -> datetime | None:
    """Claim one attempt slot for `name` in one transaction: None when claimed, else when the refusal ends.

    `refusal(row, now)` is auth's rule; a lock that has ended or a window that has passed starts a new window."""
    def claim(tx: Tx) -> datetime | None:
        row = tx.one("SELECT window_start, failures, locked_until FROM login_guard WHERE name = ?", [name])
        refused = refusal(row, now)
        if refused is not None:
            return refused
        if row is None:
            tx.execute("INSERT INTO login_guard VALUES (?, ?, 1, NULL)", [name, now])
            return None
        start, failures, until = row
        if until is not None or start + window <= now:
            start, failures = now, 0
        tx.execute("UPDATE login_guard SET window_start = ?, failures = ?, locked_until = NULL WHERE name = ?",
                   [start, failures + 1, name])
        return None

    return store.write(claim)


def settle_attempt(store: Store, name: str, ok: bool, now: datetime, *, lock_until: datetime,
                   max_failures: int) -> None:
    """Record a checked attempt: success frees the name's slots; a failure with every slot used locks it."""
    def write(tx: Tx) -> None:
        tx.execute("INSERT INTO login_attempts (name, ok, attempted_at) VALUES (?, ?, ?)", [name, ok, now])
        if ok:
            tx.execute("UPDATE login_guard SET failures = 0, locked_until = NULL, window_start = ? WHERE name = ?",
                       [now, name])
        else:
            tx.execute("UPDATE login_guard SET locked_until = ? WHERE name = ? AND failures >= ?",
                       [lock_until, name, max_failures])

    store.write(write)


# -- sessions ---------------------------------------------------------------------------------------------------------
def add_session(store: Store, sid_hash: str, name: str, cred_version: int | None, now: datetime,
                expires: datetime) -> bool:
    """Start a session row (False when there is no such user); clears sessions ended a day ago and spent guards."""
    def write(tx: Tx) -> bool:
        version = cred_version
        if version is None:
            version = tx.scalar("SELECT coalesce(cred_version, 1) FROM users WHERE name = ?", [name])
        if version is None:
            return False
        tx.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, NULL)", [sid_hash, name, version, now, expires, now])
        tx.execute("DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?", [now, now - timedelta(days=1)])
        tx.execute("DELETE FROM login_guard WHERE window_start < ? AND (locked_until IS NULL OR locked_until < ?)",
                   [now - timedelta(days=1), now])
        return True

    return store.write(write)


def session(store: Store, sid_hash: str) -> SessionRow | None:
    """A session with its user as stored now (None: no such session)."""
    with store.session() as tx:
        row = tx.one("SELECT s.cred_version, s.expires_at, s.last_seen, s.revoked_at, u.name, u.role, u.langs, "
                     "coalesce(u.cred_version, 1), coalesce(u.disabled, false) "
                     "FROM sessions s LEFT JOIN users u ON u.name = s.user_name WHERE s.id = ?", [sid_hash])
    if row is None:
        return None
    version, expires, seen, revoked, name, role, langs, current, disabled = row
    found = None if name is None else UserRow(name, role, langs or "", current, bool(disabled))
    return SessionRow(version, expires, seen, revoked, found)


def touch_session(store: Store, sid_hash: str, now: datetime) -> None:
    store.write(lambda tx: tx.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", [now, sid_hash]))


def end_session(store: Store, sid_hash: str, now: datetime) -> None:
    store.write(lambda tx: tx.execute("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                      [now, sid_hash]))
