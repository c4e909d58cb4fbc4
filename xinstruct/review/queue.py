"""The queue: which item a reviewer is given next (with a lease on it), how many are left, and the day's progress.

A claim proposes items from the cached order of each of the reviewer's languages (`cache`), checks a window of them
exactly against candidates, decisions and leases (`_check`), and leases the first free one, all in one transaction that
bumps the language counter (`locks`), so two reviewers never get the same item beyond k.

Timestamps written here (leases.expires_at) are naive UTC.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from datetime import timedelta

from ..auth import User, authorize, utcnow
from ..store import Store, Tx
from ..store import review as db
from . import cache, locks
from .rules import COMPLETING, FINAL_STATUSES, REVIEW_ACTIONS, effective_decisions, k_for


def _check(tx: Tx, user: User, ids: list[str], ks: Mapping[str, int], now) -> dict[str, tuple[str, str | None, int]]:
    """Exact state of candidates for `user`: id -> (verdict, lang, k); verdict 'ok' (claimable), 'blocked' (not for this
    user now: decided or skipped by them, or leases + completed reviews reach k) or 'dead' (final, not generated, k
    reviews done, or not in the user's languages)."""
    if not ids:
        return {}
    rows = db.queue_states(tx, ids)
    logs = db.action_logs(tx, ids)
    holders = db.lease_holders(tx, ids, now)
    out = {}
    for cid in ids:
        row = rows.get(cid)
        if row is None:
            out[cid] = ("dead", None, 1)
            continue
        lang, gen_status, status, reviews_needed = row
        k = k_for(lang, reviews_needed, ks)
        if gen_status != "ok" or status in FINAL_STATUSES or not user.can_review(lang):
            out[cid] = ("dead", lang, k)
            continue
        eff = effective_decisions(logs.get(cid, []))
        done = {d["reviewer"] for d in eff if d["action"] in COMPLETING}
        mine = any(d["reviewer"] == user.name and d["action"] in REVIEW_ACTIONS for d in eff)
        others = holders.get(cid, set()) - {user.name} - done
        if len(done) >= k:
            out[cid] = ("dead", lang, k)
        elif mine or len(done) + len(others) >= k:
            out[cid] = ("blocked", lang, k)
        else:
            out[cid] = ("ok", lang, k)
    return out


def _pick(tx: Tx, store: Store, user: User, ks: Mapping[str, int], now) -> tuple[str, str, int] | None:
    # 1. an item the user still holds (a reload, or an undo) comes back first
    own = db.leased_by(tx, user.name, now)
    state = _check(tx, user, own, ks, now)
    for cid in own:
        if state[cid][0] == "ok":
            return cid, state[cid][1], state[cid][2]
    # 2. the cached order of each language, checked exactly a window at a time
    count = db.candidate_count(tx)
    queues = {lang: cache.refresh(tx, store, lang, count) for lang in user.lang_list}
    while True:
        merged = heapq.merge(*[[(key, lang) for key in q.keys if key[-1] not in q.dead] for lang, q in queues.items()])
        size, window = 8, []  # windows of 8, 32, 128, ...: usually the first few proposals are free
        for key, lang in merged:
            window.append((key[-1], lang))
            if len(window) < size:
                continue
            found = _first_ok(tx, store, user, window, ks, now)
            if found:
                return found
            size, window = min(size * 4, 512), []
        found = _first_ok(tx, store, user, window, ks, now)
        if found:
            return found
        stale = [lang for lang, q in queues.items() if q.stale(count)]
        deeper = [lang for lang, q in queues.items() if not q.complete or lang in stale]
        if not deeper:
            return None
        for lang in deeper:  # everything cached is taken (or old): read further down the order, now
            q = queues[lang]
            queues[lang] = cache.refresh(tx, store, lang, count,
                                         depth=q.depth if q.complete else min(q.depth * 8, 1 << 22))


def _first_ok(tx, store, user, window, ks, now):
    if not window:
        return None
    state = _check(tx, user, [cid for cid, _ in window], ks, now)
    for cid, lang in window:
        verdict, real_lang, k = state[cid]
        if verdict == "ok":
            return cid, real_lang, k
        if verdict == "dead":
            cache.drop(store, lang, cid)
    return None


def get_item(store: Store, candidate_id: str) -> dict | None:
    """A candidate with its document (text, url, doc_lang, source, source_line), as next_item returns it; no lease."""
    with store.session() as tx:
        return db.item(tx, candidate_id)


def next_item(store: Store, user: User, lease_seconds: float | None = None) -> dict | None:
    """Lease and return the next candidate for `user`, or None when their queue is empty.

    An item the user already holds an unexpired lease on comes first (a reload or an undo resumes it). Otherwise: a
    candidate in the user's languages with gen_status 'ok', not final, not decided (or skipped) by this user, and with
    completed reviews + other reviewers' unexpired leases < k; selected first, then the most informative (score nearest
    0.5; no score last), then id. The lease (re)starts at now + lease_seconds (default: the item's language's lease
    length, from the review settings). Returns the candidate with its document (text, url, doc_lang, source,
    source_line), label, score, label_reason, cluster_label, k, lease_expires_at and the user's unsaved 'draft' of it.
    """
    user = authorize(user, "reviewer", store)
    for lang in user.lang_list:
        locks.ensure_counter(store, lang)

    def claim(tx: Tx) -> dict | None:
        now = utcnow()
        conf = db.lang_settings(tx)  # one read for k and the lease length
        ks = {lang: s.k for lang, s in conf.items()}
        picked = _pick(tx, store, user, ks, now)
        if picked is None:
            return None
        cid, lang, k = picked
        locks.bump(tx, lang)
        seconds = lease_seconds if lease_seconds is not None else (
            conf[lang].lease_seconds if lang in conf else db.DEFAULT_LEASE_SECONDS)
        expires = now + timedelta(seconds=seconds)
        db.drop_expired_leases(tx, user.name, now)
        db.put_lease(tx, cid, user.name, expires)
        item = db.item(tx, cid)
        item["lease_expires_at"] = expires
        item["k"] = k
        item["draft"] = db.draft(tx, user.name, cid)
        return item

    with locks.serial(store, user.lang_list):
        return store.write(claim)


def release(store: Store, user: User, candidate_id: str) -> None:
    """Give an item back without a decision (e.g. the reviewer logs out)."""
    store.write(lambda tx: db.drop_lease(tx, candidate_id, user.name))


def _queue_size(tx: Tx, user: User, now) -> int:
    ks = db.ks(tx)
    total, touched = db.open_scan(tx, user.name, user.lang_list, now)
    not_ok = 0
    for i in range(0, len(touched), 4096):
        not_ok += sum(1 for v in _check(tx, user, touched[i:i + 4096], ks, now).values() if v[0] != "ok")
    return total - not_ok


def queue_size(store: Store, user: User) -> int:
    """How many items the user could still be given (their own leased ones included). One scan of candidates."""
    with store.session() as tx:
        return _queue_size(tx, user, utcnow())


def progress(store: Store, user: User) -> dict[str, int]:
    """{done_today: completed reviews (accept/edit/reject, not undone) by the user since midnight UTC, left_in_queue}."""
    user = authorize(user, "reviewer", store)
    now = utcnow()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with store.session() as tx:  # one session: opening the file is the expensive part when the app is idle
        done = db.completed_since(tx, user.name, start, COMPLETING)
        left = _queue_size(tx, user, now)
    return {"done_today": done, "left_in_queue": left}
