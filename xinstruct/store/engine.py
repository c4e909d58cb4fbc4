"""The store's engine: connections, sessions, write retries, lock hand-over, backup. The only module that imports duckdb.

One DuckDB file holds everything. DuckDB lets one *process* open a file at a time (a second process cannot open it at all,
not even read-only), so xinstruct never keeps the file open longer than one unit of work:

* every access is a short session, `with store.session() as tx:` — the file is opened when the first session of the
  process starts and closed when the last one ends; sessions in several threads of one process share the open file.
  Opening is an ATTACH to one in-memory DuckDB instance the process keeps, closing a DETACH (a checkpoint): starting
  an instance per hand-over was most of its cost on a busy machine;
* opening retries with backoff while another process holds the lock, up to `busy_timeout` seconds (then `StoreBusy`);
* a process that is waiting leaves a marker file (`<db>.wait.<pid>`, holding its PID and process start time, touched on
  every retry); a holder that sees one stops admitting new sessions, lets the running ones finish and closes, so a busy
  review app cannot starve a pipeline job (or the other way round). A marker whose process is gone, whose PID now
  belongs to another process (start time differs) or that was not touched for MARKER_STALE_SECONDS is removed;
* interactive callers (the app's page runs) wrap their work in `store.waiting(budget, on_wait)`: every wait of that
  thread (for the file lock, or for this process handing the file over) shares one deadline and reports what it waits
  for, once a second, to `on_wait`. Such a page run also keeps the file across its store calls (one hand-over per
  click, for at most TURN_GRACE_SECONDS once another process waits), and waits in line ahead of pipeline jobs
  (INTERACTIVE_HEAD_START). An idle holder hands over within IDLE_POLL_SECONDS of a waiter appearing.

Writes go through `store.write(fn)`: `fn(tx)` runs in one transaction, retried on DuckDB's optimistic write conflicts
("Conflict on update/tuple deletion"), so a unit of work is either fully recorded or not at all.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from ..errors import StoreBusy, StoreError
from .schema import MIGRATIONS, statements

T = TypeVar("T")

DEFAULT_DB = Path("store") / "xinstruct.duckdb"


def default_db_path() -> Path:
    return Path(os.environ.get("XINSTRUCT_DB") or DEFAULT_DB)


DEFAULT_BUSY_TIMEOUT = 120.0


def env_busy_timeout() -> float:
    """XINSTRUCT_BUSY_TIMEOUT (seconds): how long a CLI command, or one page run of the app, waits for the file."""
    raw = os.environ.get("XINSTRUCT_BUSY_TIMEOUT")
    if not raw:
        return DEFAULT_BUSY_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise StoreError(f"XINSTRUCT_BUSY_TIMEOUT={raw!r} is not a number of seconds > 0; set it to e.g. 30 or "
                         "unset it")
    return value


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc)
    return isinstance(exc, duckdb.IOException) and ("lock" in msg.lower())


def _is_conflict(exc: Exception) -> bool:
    return isinstance(exc, duckdb.TransactionException) and "onflict" in str(exc)


# INSERT [OR IGNORE] INTO t (...) VALUES (one row of ? and literals): what Tx.executemany runs as one statement
_MANY_VALUES = re.compile(r"^(\s*INSERT\s+(?:OR\s+IGNORE\s+)?INTO\s+[^;]*?\bVALUES\s*)(\((?:[^()';]|'[^']*')*\))\s*$",
                          re.IGNORECASE | re.DOTALL)
MANY_ROWS = 256


class Tx:
    """One open session: a DuckDB cursor with `?` placeholders and our own errors."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection):
        self._cur = cursor

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> Tx:
        try:
            self._cur.execute(sql, params or [])
        except duckdb.TransactionException:
            raise  # retried by Store.write
        except duckdb.Error as exc:
            raise StoreError(f"database error: {exc}".strip()) from exc
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run `sql` once per row. A plain `INSERT [OR IGNORE] ... VALUES (...)` runs as one statement per
        MANY_ROWS rows (VALUES (...), (...), ...): DuckDB runs each statement as tasks of its thread pool, and on a
        busy machine every statement waits for those threads to be scheduled (8 rows one by one: 5.8 s at load 30,
        as one statement 1.2 s), all the while holding the file. Same result: the rows go in in order, and with
        OR IGNORE the first of two rows with one key wins either way."""
        if not rows:
            return
        m = _MANY_VALUES.match(sql)
        if m and len(rows) > 1 and all(len(r) == m.group(2).count("?") for r in rows):
            for start in range(0, len(rows), MANY_ROWS):
                chunk = rows[start:start + MANY_ROWS]
                self.execute(m.group(1) + ", ".join([m.group(2)] * len(chunk)), [v for r in chunk for v in r])
            return
        try:
            self._cur.executemany(sql, rows)
        except duckdb.TransactionException:
            raise
        except duckdb.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    def all(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[tuple]:
        return self.execute(sql, params)._cur.fetchall()

    def one(self, sql: str, params: Sequence[Any] | dict | None = None) -> tuple | None:
        return self.execute(sql, params)._cur.fetchone()

    def scalar(self, sql: str, params: Sequence[Any] | dict | None = None) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def dicts(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[dict]:
        cur = self.execute(sql, params)._cur
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def numpy(self, sql: str, params: Sequence[Any] | dict | None = None) -> dict[str, Any]:
        """The result as one numpy array per column (no Python object per row for numeric columns)."""
        return self.execute(sql, params)._cur.fetchnumpy()

    def df(self, sql: str, params: Sequence[Any] | dict | None = None):
        return self.execute(sql, params)._cur.df()

    def arrow_batches(self, sql: str, params: Sequence[Any] | None = None, batch_size: int = 50_000):
        """Stream a query as pyarrow RecordBatches (bounded memory)."""
        cur = self.execute(sql, params)._cur
        yield from cur.to_arrow_reader(batch_size)

    @contextmanager
    def registered(self, name: str, data) -> Iterator[None]:
        """Make a pyarrow Table / pandas DataFrame visible to SQL as `name` for the duration of the block."""
        self._cur.register(name, data)
        try:
            yield
        finally:
            try:
                self._cur.unregister(name)
            except duckdb.Error:
                pass

    def insert_arrow(self, table: str, data, columns: Sequence[str], *, skip_existing: bool = False) -> int:
        """Bulk insert a pyarrow Table / pandas DataFrame; with `skip_existing`, rows whose key is stored are ignored."""
        with self.registered("_xi_incoming", data):
            cols = ", ".join(columns)
            verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
            self.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _xi_incoming")
        return len(data)

    def copy_to(self, sql: str, path: str, options: str) -> None:
        self.execute(f"COPY ({sql}) TO '{_quote_path(path)}' ({options})")


def _quote_path(path: str | Path) -> str:
    return str(path).replace("'", "''")


# DuckDB checkpoints (folds its write-ahead log into the file) every 16 MB of log by default, recompressing the last,
# partly filled row group each time: a third of bulk ingest time. Every 256 MB it is a few percent, and closing the
# file (which checkpoints) takes under a second after a bulk ingest.
DUCKDB_CONFIG = {"checkpoint_threshold": "256MB"}
ALIAS = "xi"  # the name of the attached file in this process's DuckDB instance (every session USEs it)
IDLE_CLOSE_SECONDS = 2.0  # an idle process keeps the file open this long (unless another process waits for it)
IDLE_POLL_SECONDS = 0.05  # while the file is open and no session runs, how often the process looks for others waiting
WAIT_POLL_SECONDS = 0.03  # a waiting process tries the lock this often (a failed try costs well under a millisecond)
MARKER_STALE_SECONDS = 5.0  # a waiter touches its marker every WAIT_POLL_SECONDS; one untouched this long is left over
# A page run (a thread inside `waiting()`: a reviewer's click) keeps the file across its store calls, so one click is
# one hand-over instead of one per call, for at most this long after another process asked for the file. (1.0 s until
# 2026-12-07: the trace showed reviewers and jobs waiting out these timers, not each other's sessions, which take
# milliseconds; at 0.3 s a click beside a 50,000-document ingest went from p95 1.06 s to 0.41-0.66 s, BENCHMARKS.md.)
TURN_GRACE_SECONDS = 0.3
# In line for the file, a page run counts as queued this much earlier than it did: it goes before pipeline jobs that
# queued less than this before it (a job that waited longer still goes first, so reviewers cannot starve a job).
INTERACTIVE_HEAD_START = 5.0
# A process that handed the file over lets the process it handed it to (the first in line then) go first for this long,
# whatever their places in line: otherwise a page run arriving just then would take the file straight back, and the
# hand-over (a checkpoint) would have bought the waiting job nothing. (1.0 s until 2026-12-07, as TURN_GRACE_SECONDS.)
HANDED_TO_SECONDS = 0.3
HOLD_NOTE_SECONDS = 0.25  # sessions longer than this are checked for other processes waiting (HOLDS, a log warning)
HOLD_WARN_SECONDS = 1.0  # a session that kept another process waiting this long is logged as a warning
WAIT_REPORT_SECONDS = 0.5  # a wait shorter than this is not reported to on_wait (no flicker on ordinary clicks)

_WAITING = threading.local()  # per thread: the budget and reporter of store.waiting()
log = logging.getLogger(__name__)
# This process's sessions that ran while another process waited for the file: count and longest (seconds). What a
# waiting reviewer pays per handover; bench/reliability.py --shared and tests/test_reliability.py read it.
HOLDS = {"while_waited": 0, "longest": 0.0}


_TRACE = os.environ.get("XINSTRUCT_STORE_TRACE")  # a file: one JSON line per open, close and long session (benches)


def _trace(event: str, **fields: Any) -> None:
    if _TRACE:
        try:
            with open(_TRACE, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "t": time.time(), "event": event, **fields}) + "\n")
        except OSError:
            pass


def _caller() -> str:
    """The functions that opened the current session (for the trace): the first two frames outside this module."""
    import sys

    f, names = sys._getframe(1), []
    while f is not None and len(names) < 2:
        mod = f.f_globals.get("__name__", "")
        if mod != __name__ and not mod.startswith("contextlib"):
            names.append(f"{mod.rsplit('.', 1)[-1]}.{f.f_code.co_name}")
        f = f.f_back
    return " < ".join(names)


def _note_hold(store: "Store", seconds: float) -> None:
    if not store._others_waiting():
        return
    HOLDS["while_waited"] += 1
    HOLDS["longest"] = max(HOLDS["longest"], seconds)
    if seconds > HOLD_WARN_SECONDS:
        log.warning("a session held %s for %.1f s while another process waited for it", store.path, seconds)


class _Wait:
    """One wait of one thread: its deadline (the session's own timeout, or the thread's shared budget if sooner) and
    its reports to the thread's on_wait."""

    def __init__(self, timeout: float):
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.budget = getattr(_WAITING, "deadline", None)
        if self.budget is not None:
            self.deadline = min(self.deadline, self.budget)
        self.on_wait = getattr(_WAITING, "on_wait", None)
        self.reported = 0.0

    def tick(self, what: str) -> None:
        """Report (at most once a second, after WAIT_REPORT_SECONDS) and raise StoreBusy past the deadline."""
        now = time.monotonic()
        elapsed = now - self.start
        if self.on_wait is not None and elapsed >= WAIT_REPORT_SECONDS and now - self.reported >= 1.0:
            self.reported = now
            try:
                self.on_wait(what, elapsed)
            except Exception:  # a broken reporter must not break the wait
                pass
        if now > self.deadline:
            if self.budget is not None and self.deadline == self.budget:
                limit = getattr(_WAITING, "budget", elapsed)
                raise StoreBusy(f"waited {elapsed:.0f} s for {what}; this page may wait {limit:.0f} s in all "
                                "(XINSTRUCT_BUSY_TIMEOUT); try again in a moment")
            raise StoreBusy(f"waited {elapsed:.0f} s for {what}; wait for that job to finish or raise "
                            "XINSTRUCT_BUSY_TIMEOUT")

    def done(self) -> None:
        if self.on_wait is not None and self.reported:
            try:
                self.on_wait(None, time.monotonic() - self.start)
            except Exception:
                pass


@contextmanager
def waiting(budget: float, on_wait: Callable[[str | None, float], None] | None = None) -> Iterator[None]:
    """Every store wait of this thread inside the block shares one deadline, `budget` seconds from now (an app page
    run: XINSTRUCT_BUSY_TIMEOUT over the whole run, not per call). `on_wait(what, seconds)` is called about once a
    second while a wait lasts (after WAIT_REPORT_SECONDS), and `on_wait(None, seconds)` when a reported wait ends."""
    saved = (getattr(_WAITING, "deadline", None), getattr(_WAITING, "on_wait", None), getattr(_WAITING, "budget", None),
             getattr(_WAITING, "turn", None))
    _WAITING.deadline, _WAITING.on_wait, _WAITING.budget = time.monotonic() + budget, on_wait, budget
    _WAITING.turn = set()  # the files this page run used: each kept across its calls, handed over at its end
    try:
        yield
    finally:
        used = _WAITING.turn
        _WAITING.deadline, _WAITING.on_wait, _WAITING.budget, _WAITING.turn = saved
        for sh in used:
            _end_turn(sh)


class _Shared:
    """The one open DuckDB instance of this process for one file, shared by its threads."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.cond = threading.Condition()
        self.inst: duckdb.DuckDBPyConnection | None = None  # this process's DuckDB instance for the file (in memory)
        self.con: duckdb.DuckDBPyConnection | None = None  # the instance while the file is attached (open), else None
        self.users = 0
        self.draining = False
        self.idle_since = 0.0
        self.held = 0  # > 0 inside Store.held(): stay open while idle unless another process waits
        self.opening = False  # a thread is opening the file (outside the lock, so others can report their wait)
        self.opened_at = 0.0  # when this process last opened the file (its turn began)
        self.local = threading.local()  # per-thread session depth: nested sessions never wait for themselves
        self.turns = 0  # page runs (threads inside waiting()) that used the file and have not ended
        self.waited_since: float | None = None  # when this process saw another one waiting (None: nobody waits)
        self.watching = False  # the idle watcher thread runs (see _watch)
        self.handed_to: tuple[float, int] | None = None  # (place, pid) of the process this one last handed over to
        self.handed_at = 0.0

    def others_waiting(self) -> bool:
        return bool(_waiters(self.path))

    def turn_keeps(self, now: float | None = None) -> bool:
        """With the lock held and another process waiting: whether running page runs still keep the file."""
        if self.turns <= 0:
            return False
        now = time.monotonic() if now is None else now
        if self.waited_since is None:
            self.waited_since = now
        return now - self.waited_since < TURN_GRACE_SECONDS

    def hand_over(self) -> None:
        """With the lock held: close the file for the process first in line now (it goes first, HANDED_TO_SECONDS)."""
        line = _waiters(self.path)
        self.handed_to, self.handed_at = (line[0] if line else None), time.monotonic()
        Store._close(self)

    def hand_over_due(self) -> bool:
        """With the lock held: whether another process waits and no page run's grace keeps the file."""
        if not self.others_waiting():
            self.waited_since = None
            return False
        return not self.turn_keeps()


_SHARED: dict[str, _Shared] = {}
_SHARED_LOCK = threading.Lock()


class Store:
    """Handle on one xinstruct database file (or ':memory:' for tests)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                 migrate: bool = True):
        self.memory = str(path) == ":memory:"
        self.path = ":memory:" if self.memory else Path(path or default_db_path()).resolve()
        self.busy_timeout = busy_timeout
        if self.memory:
            self._mem = duckdb.connect(":memory:")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if migrate:
            self.migrate()

    # -- opening and sharing ------------------------------------------------------------------------------------------
    def _shared(self) -> _Shared:
        with _SHARED_LOCK:
            sh = _SHARED.get(str(self.path))
            if sh is None:
                sh = _SHARED[str(self.path)] = _Shared(self.path)
            return sh

    def _marker(self) -> Path:
        return _marker_path(self.path)

    def _waiters(self) -> list[tuple[float, int]]:
        """(place in line, pid) of every other process waiting for the file now, first in line first."""
        return _waiters(self.path)

    def _others_waiting(self) -> bool:
        return bool(self._waiters())

    def _open(self, sh: _Shared) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting in line: processes that queued earlier (older marker) open it first, so a process
        that has just handed the file over cannot take it straight back, and no waiter is starved."""
        wait = _Wait(self.busy_timeout)
        marker = None
        place = float("inf")  # not queued yet: everyone already waiting goes first
        interactive = wait.budget is not None  # a page run (inside waiting()): goes before pipeline jobs
        what = "the database"
        try:
            while True:
                line = self._waiters()
                ahead = [w for w in line if w < (place, os.getpid())]
                if (not ahead and sh.handed_to is not None and time.monotonic() - sh.handed_at < HANDED_TO_SECONDS
                        and any(pid == sh.handed_to[1] for _, pid in line)):
                    ahead = [sh.handed_to]  # we just handed the file to it: it goes first
                if not ahead:
                    try:
                        t0 = time.monotonic()
                        con = _attach(sh)
                        _trace("open", waited=t0 - wait.start, connect=time.monotonic() - t0,
                               interactive=wait.budget is not None)
                        return con
                    except duckdb.Error as exc:
                        if not _is_lock_error(exc):
                            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
                        what = f"the database, held by {_holder(str(exc))}"
                else:
                    what = f"the database, {len(ahead)} other process(es) ahead in line (PID {ahead[0][1]} first)"
                if marker is None:
                    marker = self._marker()
                    since = time.time()
                    kind = "page" if interactive else "job"
                    marker.write_text(f"{os.getpid()} {_start_time(os.getpid()) or '-'} {since!r} {kind}\n")
                    place = since - (INTERACTIVE_HEAD_START if interactive else 0.0)
                else:
                    _touch(marker)  # the heartbeat: a marker untouched for MARKER_STALE_SECONDS is left over
                try:
                    wait.tick(what)
                except StoreBusy as busy:
                    raise StoreBusy(f"database {self.path}: {busy}") from None
                time.sleep(WAIT_POLL_SECONDS * (0.5 + random.random()))
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)
            wait.done()

    @contextmanager
    def session(self) -> Iterator[Tx]:
        """A short unit of work. Do not run model inference inside a session: other processes are waiting.

        Sessions may nest in one thread (the inner one reuses the open file and never waits for the outer one).
        """
        if self.memory:
            cur = self._mem.cursor()
            try:
                yield Tx(cur)
            finally:
                cur.close()
            return
        sh = self._shared()
        depth = getattr(sh.local, "depth", 0)
        turn = getattr(_WAITING, "turn", None) if depth == 0 else None  # this thread's page run, if any
        with sh.cond:
            wait = _Wait(self.busy_timeout)
            try:
                if depth == 0:
                    self._admit(sh, wait)
                while sh.con is None:
                    if sh.opening:  # another thread of this process is opening it (maybe waiting for the lock)
                        sh.cond.wait(0.1)
                        wait.tick("the database (another process holds it)")
                        continue
                    sh.opening = True
                    sh.cond.release()  # open outside the lock: the other threads can report their wait meanwhile
                    try:
                        con = self._open(sh)
                    finally:
                        sh.cond.acquire()
                        sh.opening = False
                        sh.cond.notify_all()
                    sh.con = con
                    sh.opened_at = time.monotonic()
                    sh.waited_since = None
                    _start_watch(sh)
            finally:
                wait.done()
            if turn is not None and sh not in turn:
                turn.add(sh)
                sh.turns += 1
            sh.users += 1
            cur = sh.con.cursor()
            try:
                cur.execute(f"USE {ALIAS}")
            except BaseException:
                cur.close()
                sh.users -= 1
                raise
        sh.local.depth = depth + 1
        began = time.monotonic()
        try:
            yield Tx(cur)
        finally:
            sh.local.depth = depth
            cur.close()
            with sh.cond:
                sh.users -= 1
                held_for = time.monotonic() - began
                if _TRACE and depth == 0:
                    _trace("session", seconds=held_for, waited=began - wait.start, where=_caller())
                if depth == 0 and held_for > HOLD_NOTE_SECONDS:
                    _note_hold(self, held_for)
                if sh.users == 0:
                    sh.idle_since = time.monotonic()
                    if sh.hand_over_due():
                        sh.hand_over()
                    # else the watcher hands over when a page run's grace ends, or closes the idle file
                sh.cond.notify_all()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open between this process's sessions while no other process waits for it.

        For a long job whose sessions are seconds apart (ingest waiting for its workers): without it, every idle gap
        closes and reopens the file, and each close is a checkpoint. Another process that starts waiting still gets
        the file within IDLE_POLL_SECONDS of the job's current session ending.
        """
        if self.memory:
            yield
            return
        sh = self._shared()
        with sh.cond:
            sh.held += 1
        try:
            yield
        finally:
            with sh.cond:
                sh.held -= 1

    def _admit(self, sh: _Shared, wait: _Wait) -> None:
        """Called with sh.cond held: wait while draining; hand the file over when another process is waiting. While
        page runs keep the file (their grace after another process asked for it), sessions go on with it: the file
        stays open for those page runs anyway, so the waiting process waits no longer."""
        while sh.draining and not (sh.con is not None and sh.turn_keeps()):
            sh.cond.wait(0.05)
            wait.tick("another process's turn with the database")
        if sh.con is not None and sh.others_waiting():
            if sh.turn_keeps():
                return
            sh.draining = True
            try:
                while sh.users > 0 or (sh.con is not None and sh.turn_keeps()):
                    sh.cond.wait(0.05)
                    wait.tick("this app's running requests, to hand the database to another process")
                if sh.con is not None:
                    sh.hand_over()
            finally:
                sh.draining = False
                sh.cond.notify_all()
            time.sleep(0.05)  # let the waiting process take the lock

    def has_data(self) -> bool:
        """Whether anything beyond the schema was stored: documents, candidates, decisions, users or settings."""
        with self.session() as tx:
            return bool(tx.scalar(
                "SELECT EXISTS (SELECT 1 FROM documents) OR EXISTS (SELECT 1 FROM candidates) "
                "OR EXISTS (SELECT 1 FROM decisions) OR EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM settings)"))

    def close(self) -> None:
        """Close the file now if no session is open (the next session reopens it)."""
        if self.memory:
            return
        sh = self._shared()
        with sh.cond:
            if sh.users == 0:
                self._close(sh)

    @staticmethod
    def _close(sh: _Shared) -> None:
        if sh.con is not None:
            t0 = time.monotonic()
            try:
                _detach(sh)
            finally:
                sh.con = None
                sh.waited_since = None
                _trace("close", seconds=time.monotonic() - t0, turn=time.monotonic() - sh.opened_at)

    def write(self, fn: Callable[[Tx], T], *, retries: int = 30) -> T:
        """Run `fn(tx)` in one transaction; retried on write-write conflicts. All or nothing."""
        for attempt in range(retries):
            with self.session() as tx:
                tx.execute("BEGIN TRANSACTION")
                try:
                    result = fn(tx)
                    tx.execute("COMMIT")
                    return result
                except duckdb.TransactionException as exc:
                    _rollback(tx)
                    if not _is_conflict(exc) or attempt == retries - 1:
                        raise StoreError(f"write failed after {attempt + 1} attempts: {exc}") from exc
                except BaseException:
                    _rollback(tx)
                    raise
            time.sleep(0.002 * (attempt + 1) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    # -- schema -------------------------------------------------------------------------------------------------------
    def migrate(self, upto: str | None = None) -> list[str]:
        """Apply pending migrations in order (each in its own transaction); return the names applied."""
        applied: list[str] = []
        with self.session() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
            done = {r[0] for r in tx.all("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue

            def apply(tx: Tx, name=name, sql=sql) -> None:
                for stmt in statements(sql):
                    tx.execute(stmt)
                tx.execute("INSERT INTO migrations VALUES (?, current_timestamp)", [name])

            self.write(apply, retries=3)
            applied.append(name)
            if name == upto:
                break
        return applied

    def migrations(self) -> list[str]:
        with self.session() as tx:
            return [r[0] for r in tx.all("SELECT name FROM migrations ORDER BY name")]

    # -- small helpers used everywhere ------------------------------------------------------------------------------
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self.session() as tx:
            value = tx.scalar("SELECT value FROM settings WHERE key = ?", [key])
        return default if value is None else value

    def set_setting(self, key: str, value: str) -> None:
        self.write(lambda tx: tx.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value]))

    # -- backup -------------------------------------------------------------------------------------------------------
    def backup(self, folder: str | Path) -> Path:
        """A consistent copy of every table (EXPORT DATABASE as Parquet) in `folder`."""
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise StoreError(f"backup folder {folder} is not empty; choose a new folder")
        folder.mkdir(parents=True, exist_ok=True)
        with self.session() as tx:
            tx.execute(f"EXPORT DATABASE '{_quote_path(folder)}' (FORMAT parquet)")
        return folder

    @classmethod
    def restore(cls, folder: str | Path, path: str | Path) -> Store:
        """Create a new database at `path` from a backup folder. Refuses to overwrite an existing database."""
        folder, path = Path(folder), Path(path)
        if not (folder / "schema.sql").exists():
            raise StoreError(f"{folder} is not an xinstruct backup (no schema.sql); pass the folder `xinstruct backup` made")
        if path.exists():
            raise StoreError(f"{path} already exists; restore into a new file and swap it in when you are sure")
        store = cls(path, migrate=False)
        with store.session() as tx:
            tx.execute(f"IMPORT DATABASE '{_quote_path(folder)}'")
        store.migrate()
        return store


def _start_watch(sh: _Shared) -> None:
    """With sh.cond held, the file just opened: start the watcher thread unless it runs."""
    if not sh.watching:
        sh.watching = True
        threading.Thread(target=_watch, args=(sh,), daemon=True, name="xinstruct-store-watch").start()


def _watch(sh: _Shared) -> None:
    """While the file is open: whenever no session runs, hand it over as soon as another process waits (and no page
    run's grace keeps it), and close it after IDLE_CLOSE_SECONDS idle unless held. Ends when the file is closed.

    Without it an idle holder (a job between batches, the app between clicks) would notice a waiter only at its next
    session or after the idle grace: seconds of a reviewer waiting for a file nobody uses."""
    with sh.cond:
        try:
            while sh.con is not None:
                if sh.users == 0 and not sh.draining:
                    if sh.hand_over_due():
                        sh.hand_over()
                        sh.cond.notify_all()
                        break
                    if (time.monotonic() - sh.idle_since >= IDLE_CLOSE_SECONDS and not sh.held
                            and sh.waited_since is None):
                        Store._close(sh)
                        sh.cond.notify_all()
                        break
                sh.cond.wait(IDLE_POLL_SECONDS)
        finally:
            sh.watching = False


def _end_turn(sh: _Shared) -> None:
    """A page run that used the file ended: hand the file over now if another process waits for it."""
    with sh.cond:
        sh.turns -= 1
        if sh.users == 0 and sh.con is not None and not sh.draining and sh.hand_over_due():
            sh.hand_over()
        sh.cond.notify_all()


def _attach(sh: _Shared) -> duckdb.DuckDBPyConnection:
    """Open the file: ATTACH it to this process's DuckDB instance for it (made once, in memory, kept for the process's
    life). Starting a DuckDB instance costs 0.2-0.9 s on 2 busy cores (its thread pool, its catalog) and a hand-over
    used to pay it twice (close in one process, connect in the next); ATTACH / DETACH take and release the same file
    lock for a fraction of that. Raises DuckDB's lock error when another process holds the file."""
    if sh.inst is None:
        sh.inst = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
    sh.inst.execute(f"ATTACH '{_quote_path(sh.path)}' AS {ALIAS}")
    return sh.inst


def _detach(sh: _Shared) -> None:
    """Close the file (DETACH checkpoints it and releases the lock); the instance stays. If DETACH fails, the whole
    instance is closed, so the lock is released either way."""
    try:
        sh.inst.execute(f"DETACH {ALIAS}")
    except BaseException:
        inst, sh.inst = sh.inst, None
        try:
            inst.close()
        except duckdb.Error:
            pass
        raise


@atexit.register
def _close_all() -> None:
    for sh in list(_SHARED.values()):
        with sh.cond:
            if sh.inst is not None:
                try:
                    if sh.con is not None:
                        sh.inst.execute(f"DETACH {ALIAS}")
                except duckdb.Error:
                    pass
                try:
                    sh.inst.close()
                except duckdb.Error:
                    pass
                sh.inst = None
            sh.con = None


def _rollback(tx: Tx) -> None:
    try:
        tx._cur.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), or None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name (field 2) may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def _touch(marker: Path) -> None:
    try:
        os.utime(marker)
    except OSError:
        pass


def _marker_live(marker: Path) -> bool:
    """Whether this wait marker belongs to a process that is waiting now; a left-over marker is removed.

    Left over: its PID is gone, the PID belongs to another process than the one that wrote it (start time differs:
    the PID was reused), or nobody touched it for MARKER_STALE_SECONDS (a waiter touches it on every retry)."""
    try:
        pid = int(marker.name.rsplit(".", 1)[1])
        age = time.time() - marker.stat().st_mtime
        written = marker.read_text().split()
    except (ValueError, OSError):
        return _drop(marker)
    if age > MARKER_STALE_SECONDS:
        return _drop(marker)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return _drop(marker)
    except PermissionError:
        pass  # alive, another user's
    started = _start_time(pid)
    if len(written) >= 2 and started is not None and written[1] not in ("-", started):
        return _drop(marker)
    return True


def _marker_path(db: Path) -> Path:
    return Path(f"{db}.wait.{os.getpid()}")


def _waiters(db: Path) -> list[tuple[float, int]]:
    """(place in line, pid) of every other process waiting for the file `db` now, first in line first."""
    mine = _marker_path(db).name
    out = []
    for p in db.parent.glob(db.name + ".wait.*"):
        if p.name != mine and _marker_live(p):
            out.append((_marker_place(p), int(p.name.rsplit(".", 1)[1])))
    return sorted(out)


def _marker_place(marker: Path) -> float:
    """The marker's place in line: when its process queued (written in the marker; its change time for an older
    marker), INTERACTIVE_HEAD_START earlier for a page run."""
    try:
        fields = marker.read_text().split()
        since = float(fields[2])
    except (OSError, IndexError, ValueError):
        try:
            return marker.stat().st_ctime
        except OSError:
            return 0.0
    return since - (INTERACTIVE_HEAD_START if fields[3:4] == ["page"] else 0.0)


def _drop(marker: Path) -> bool:
    try:
        marker.unlink(missing_ok=True)
    except OSError:
        pass  # another user's file in a shared folder: it still counts as left over
    return False


def _holder(lock_error: str) -> str:
    """Who holds the file, from DuckDB's lock error ('... Conflicting lock is held in /usr/bin/python3 (PID 123)')."""
    m = re.search(r"PID (\d+)", lock_error)
    if not m:
        return "another process"
    pid = int(m.group(1))
    try:
        args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        args = []
    words = [os.path.basename(a) for a in args]
    while words and (words[0].startswith("python") or words[0] in ("-m", "-u")):
        words.pop(0)
    name = " ".join(w for w in words[:2] if not w.startswith("-"))[:60]
    return f"another process ({name}, PID {pid})" if name else f"another process (PID {pid})"


def where_equal(**values: Any) -> tuple[str, list[Any]]:
    """`col = ? AND ...` and its parameters for the given columns whose value is not None (TRUE when none is)."""
    given = [(col, value) for col, value in values.items() if value is not None]
    return " AND ".join(f"{col} = ?" for col, _ in given) or "TRUE", [value for _, value in given]


def records(cls: type[T], columns: Sequence[str], rows: Iterable[Sequence[Any]], *, json_fields: Sequence[str] = ()
            ) -> list[T]:
    """Rows as `cls(**row)`, decoding the JSON text of `json_fields`."""
    out = []
    for row in rows:
        d = dict(zip(columns, row))
        for name in json_fields:
            if isinstance(d.get(name), str):
                d[name] = json.loads(d[name])
        out.append(cls(**d))
    return out


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
