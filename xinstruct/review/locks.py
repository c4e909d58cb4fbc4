"""Serialising the claims and decisions of one language: a lock per language in this process, a counter row in the store.

DuckDB uses optimistic concurrency: two transactions conflict only when they *change* the same row (an update that
writes the old value, or inserts of different rows, never conflict). A claim reads leases and decisions and then inserts
a lease row, which on its own allows write skew (two reviewers both see a free item and both lease it). Every transaction
that reads review state and then writes it therefore also bumps its language's row in `review_counters` (`bump`): two
such transactions for one language always conflict, and `store.write` retries the loser with a fresh snapshot. That is
what makes them correct, across processes too.

The app serves every reviewer from threads of one process, so a process lock per language (`serial`) additionally keeps
the claims of a language from retrying against each other: they queue for a few ms instead. Other languages run in
parallel.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from contextlib import contextmanager

from ..errors import StoreError
from ..store import Store, Tx
from ..store import review as db

_READY: weakref.WeakKeyDictionary[Store, set[str]] = weakref.WeakKeyDictionary()
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def serial(store: Store, langs: Iterable[str]):
    """Hold this process's lock for each language (taken in sorted order, so never a deadlock)."""
    where = f"memory:{id(store)}" if store.memory else str(store.path)
    with _LOCKS_GUARD:
        locks = [_LOCKS.setdefault((where, lang), threading.Lock()) for lang in sorted(set(langs))]
    for lock in locks:
        lock.acquire()
    try:
        yield
    finally:
        for lock in reversed(locks):
            lock.release()


def ensure_counter(store: Store, lang: str) -> None:
    """Create the language's counter row once per Store object. Its insert can conflict with another process creating
    it at the same moment; then the row exists, which is all we need."""
    ready = _READY.setdefault(store, set())
    if lang in ready:
        return
    with serial(store, [lang]):
        for attempt in range(20):
            try:
                store.write(lambda tx: db.create_counter(tx, lang))
                break
            except StoreError:
                with store.session() as tx:
                    if db.counter_exists(tx, lang):
                        break
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
    ready.add(lang)


def bump(tx: Tx, lang: str) -> None:
    """Change the language's counter row: serialises this transaction against every other claim/decision of the
    language (the row must exist: `ensure_counter` first, outside the transaction)."""
    db.bump_counter(tx, lang)
