"""The per-process cache of each language's queue order, refreshed by background threads.

Ordering a million rows takes DuckDB 20-40 ms per language on two cores, so each process keeps, per language, the order
of the first QUEUE_DEPTH open candidates (id + sort key only) for QUEUE_TTL seconds, or until the number of candidates
changes. The cache only proposes; every proposal is checked exactly against candidates, decisions and leases inside the
claiming transaction (under the language lock and counter, see `locks`), so a stale cache can make the order briefly
stale but can never hand out an item twice or one that is already decided.

State is per Store object (weakly held: a closed, dropped store takes its cache with it).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable

from ..store import Store, Tx
from ..store import review as db
from .locks import serial
from .rules import order_key

QUEUE_TTL = 30.0
QUEUE_DEPTH = 256


class LangQueue:
    """One language's cached order: sort keys (ending with the candidate id), ids found taken since, and when it was
    read; `complete` when it holds every open candidate of the language."""

    __slots__ = ("keys", "dead", "loaded", "count", "depth", "complete", "refreshing")

    def __init__(self):
        self.keys: list[tuple] = []
        self.dead: set[str] = set()
        self.loaded: float | None = None
        self.count = -1
        self.depth = QUEUE_DEPTH
        self.complete = False
        self.refreshing = False

    def stale(self, count: int) -> bool:
        """Old (TTL), or read when the store had another number of candidates."""
        return self.count != count or time.monotonic() - (self.loaded or 0.0) > QUEUE_TTL


_QUEUES: weakref.WeakKeyDictionary[Store, dict[str, LangQueue]] = weakref.WeakKeyDictionary()


def queue(store: Store, lang: str) -> LangQueue:
    return _QUEUES.setdefault(store, {}).setdefault(lang, LangQueue())


def drop(store: Store, lang: str, candidate_id: str) -> None:
    """Mark one item as taken for good (final, or k reviews done): later claims skip it without checking."""
    q = _QUEUES.get(store, {}).get(lang)
    if q is not None:
        q.dead.add(candidate_id)


def invalidate(store: Store, langs: Iterable[str] | None = None) -> None:
    """Forget the cached order (all languages, or some): the next claim reads it afresh."""
    queues = _QUEUES.get(store, {})
    for lang in list(queues) if langs is None else langs:
        queues.pop(lang, None)


def top(tx: Tx, lang: str, depth: int) -> list[tuple]:
    """The first `depth` open candidates of a language as sort keys (`order_key`)."""
    return [order_key(sel, score, cid) for cid, sel, score in db.open_order(tx, lang, depth)]


def _fill(q: LangQueue, keys: list[tuple], count: int, depth: int) -> None:
    q.keys, q.dead, q.depth = keys, set(), depth
    q.loaded, q.count, q.complete = time.monotonic(), count, len(keys) < depth


def refresh(tx: Tx, store: Store, lang: str, count: int, depth: int | None = None) -> LangQueue:
    """The language's cached order. Read now when there is none (or deeper is asked for); when it is only old (TTL) or
    the number of candidates changed, keep serving it and read the new order in a background thread."""
    q = queue(store, lang)
    if q.loaded is None or depth is not None:
        depth = depth or QUEUE_DEPTH
        _fill(q, top(tx, lang, depth), count, depth)
    elif q.stale(count) and not q.refreshing:
        q.refreshing = True
        threading.Thread(target=_refresh_later, args=(store, lang, q, count), daemon=True,
                         name=f"xinstruct-queue-{lang}").start()
    return q


def _refresh_later(store: Store, lang: str, q: LangQueue, count: int) -> None:
    try:
        depth = max(q.depth, QUEUE_DEPTH)
        with store.session() as tx:
            keys = top(tx, lang, depth)
        with serial(store, [lang]):
            if _QUEUES.get(store, {}).get(lang) is q:
                _fill(q, keys, count, depth)
    except Exception:  # noqa: BLE001 - a failed refresh only leaves the old order in place
        pass
    finally:
        q.refreshing = False
