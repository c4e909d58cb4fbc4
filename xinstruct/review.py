"""The review queue: which item a reviewer sees next, and the decision log that everything else is derived from.

The `decisions` table is an append-only log. A candidate's `review_status`, `final_instruction` and `final_response` are
re-derived from its whole log after every decision by the pure function `derive_state(decisions, k)`, so a retry, an undo or
a curator's adjudication never leaves the candidate half updated.

Concurrency. DuckDB uses optimistic concurrency: two transactions conflict only when they *change* the same row (an update
that writes the old value, or inserts of different rows, never conflict). A claim reads leases and decisions and then
inserts a lease row, which on its own allows write skew (two reviewers both see a free item and both lease it). Every
transaction that reads review state and then writes it therefore also bumps a per-language counter in `settings`
(`review.seq.<lang>`): two such transactions for one language always conflict, and `store.write` retries the loser with a
fresh snapshot. Claims and decisions of one language are thereby serialised (a few ms each); other languages run in
parallel.

Timestamps that this module writes itself (leases.expires_at) are naive UTC.
"""

from __future__ import annotations

import difflib
import heapq
import json
import re
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from .auth import User, authorize, utcnow
from .errors import AccessDenied, InputError, StoreError
from .langs import LANGS
from .store import Store, Tx, to_json
# The words of the decision log and the review states are defined once, in the vocabulary.
from .vocab import ACTIONS, CURATOR_ACTIONS, FINAL_STATUSES, REJECT_REASONS, REVIEW_ACTIONS, STATUS_OF  # noqa: F401
from .vocab import VERDICTS as COMPLETING  # a completed review; skip is not one

GUIDELINES_KEY = "guidelines"
DEFAULT_GUIDELINES = """\
### How to review

Each item is an **English instruction** written by a model for a **native web text** (the response). Read the source text,
then decide whether the response is a good answer to the instruction.

- **Accept** (`A`) when the instruction fits the text and the text is a useful, safe answer.
- **Edit** (`E`) when a small change makes it good: usually rewrite the instruction; trim boilerplate from the response
  (menus, ads, "read more"). Never translate the response. `Ctrl+Enter` saves, `Esc` cancels.
- **Reject** (`X`, then `1`-`6`) when it cannot be fixed: wrong language, not an answer, unsafe, personal data, poor
  quality, or other (describe it).
- **Skip** (`S`) when you are unsure; someone else will review it.
- **Undo** (`U`) takes back your last decision.

The evaluator's label and score are only a suggestion.
"""


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------------------------------
def _after(d: Mapping) -> dict:
    value = d.get("after")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    return value if isinstance(value, dict) else {}


def effective_decisions(decisions: Iterable[Mapping]) -> list[Mapping]:
    """The decisions still in force, in log order: an undo cancels its reviewer's latest decision not yet cancelled, and a
    send_to_review (still in force) cancels everything before it. relabel_lang rows are not review decisions."""
    stacks: dict[str, list[Mapping]] = {}
    order: list[Mapping] = []
    for d in sorted(decisions, key=lambda d: d["id"]):
        action = d["action"]
        if action == "undo":
            stack = stacks.get(d["reviewer"])
            if stack:
                undone = stack.pop()
                order = [x for x in order if x is not undone]
        elif action in REVIEW_ACTIONS or action in CURATOR_ACTIONS:
            stacks.setdefault(d["reviewer"], []).append(d)
            order.append(d)
    resets = [i for i, d in enumerate(order) if d["action"] == "send_to_review"]
    if resets:
        order = order[resets[-1] + 1:]
    return order


def derive_state(decisions: Iterable[Mapping], k: int) -> dict[str, Any]:
    """A candidate's review state from its decision log (pure; the rule of record).

    Each decision: {id, reviewer, action, after (dict or JSON), reason}. Returns {review_status, final_instruction,
    final_response, reviews} where reviews is the number of completed reviews counted.

    - The latest bulk_accept or adjudicate in force decides (curators).
    - Otherwise each reviewer's latest accept/edit/reject counts once. None: 'pending'; fewer than k: 'in_review';
      k or more that agree: 'accepted' / 'edited' / 'rejected'; else 'conflict'. Agreement: all accept, all reject (the
      reasons may differ), or all edit to the same text. Skips never count.
    """
    k = max(1, int(k))
    eff = effective_decisions(decisions)
    curator = [d for d in eff if d["action"] in ("bulk_accept", "adjudicate")]
    if curator:
        d = curator[-1]
        after = _after(d)
        status = "accepted" if d["action"] == "bulk_accept" else after.get("status", "accepted")
        if status not in FINAL_STATUSES:
            status = "accepted"
        keep = status != "rejected"
        return {
            "review_status": status,
            "final_instruction": after.get("instruction") if keep else None,
            "final_response": after.get("response") if keep else None,
            "reviews": 0,
        }
    latest: dict[str, Mapping] = {}
    for d in eff:
        if d["action"] in COMPLETING:
            latest[d["reviewer"]] = d
    reviews = sorted(latest.values(), key=lambda d: d["id"])
    state = {"review_status": "pending", "final_instruction": None, "final_response": None, "reviews": len(reviews)}
    if not reviews:
        return state
    if len(reviews) < k:
        state["review_status"] = "in_review"
        return state
    actions = {d["action"] for d in reviews}
    if len(actions) != 1:
        state["review_status"] = "conflict"
        return state
    action = actions.pop()
    afters = [_after(d) for d in reviews]
    if action == "edit":
        texts = {(a.get("instruction"), a.get("response")) for a in afters}
        if len(texts) != 1:
            state["review_status"] = "conflict"
            return state
    state["review_status"] = STATUS_OF[action]
    if action != "reject":
        state["final_instruction"] = afters[-1].get("instruction")
        state["final_response"] = afters[-1].get("response")
    return state


_TOKEN = re.compile(r"\s+|[^\s]+")


def word_diff(a: str | None, b: str | None) -> list[tuple[str, str]]:
    """Word-level diff of a -> b as (op, text) pairs, op in equal/insert/delete; joining the equal+delete texts gives a,
    joining equal+insert gives b. Whitespace runs are tokens of their own."""
    ta, tb = _TOKEN.findall(a or ""), _TOKEN.findall(b or "")
    out: list[tuple[str, str]] = []

    def add(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag == "equal":
            add("equal", "".join(ta[i1:i2]))
        else:
            add("delete", "".join(ta[i1:i2]))
            add("insert", "".join(tb[j1:j2]))
    return out


def request_id_for(user: User | str, candidate_id: str, action: str, nonce: str | None = None) -> str:
    """An idempotency key for one shown item + action (the page makes one nonce per showing)."""
    name = user.name if isinstance(user, User) else user
    return f"{name}:{candidate_id}:{action}:{nonce or uuid.uuid4().hex}"


# ---------------------------------------------------------------------------------------------------------------------
# Store helpers
# ---------------------------------------------------------------------------------------------------------------------
def _seq_key(lang: str) -> str:
    return f"review.seq.{lang}"


_SEQ_READY: weakref.WeakKeyDictionary[Store, set[str]] = weakref.WeakKeyDictionary()


def _ensure_seq(store: Store, lang: str) -> None:
    """Create the per-language counter row once per Store object (under the language lock; another process may win)."""
    ready = _SEQ_READY.setdefault(store, set())
    if lang in ready:
        return
    with _serial(store, [lang]):
        for attempt in range(20):
            try:
                store.write(lambda tx: tx.execute("INSERT OR IGNORE INTO settings VALUES (?, '0')", [_seq_key(lang)]))
                break
            except StoreError:
                if store.get_setting(_seq_key(lang)) is not None:
                    break
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
    ready.add(lang)


_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _serial(store: Store, langs: Iterable[str]):
    """Hold this process's lock for each language (sorted, so never a deadlock). The app serves every reviewer from
    threads of one process, and DuckDB lets only one process open the file, so these locks keep the claims of a language
    from retrying against each other; the counter row in `_bump` is what makes them correct."""
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


def _bump(tx: Tx, lang: str) -> None:
    """Change the language's counter row: serialises this transaction against every other claim/decision of the language."""
    tx.execute("UPDATE settings SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) WHERE key = ?", [_seq_key(lang)])


def k_settings(tx: Tx) -> dict[str, int]:
    out = {}
    for key, value in tx.all("SELECT key, value FROM settings WHERE key LIKE 'k.%'"):
        try:
            out[key[2:]] = max(1, int(value))
        except (TypeError, ValueError):
            continue
    return out


def k_for(lang: str, reviews_needed: int | None, ks: Mapping[str, int]) -> int:
    """Reviews needed: the larger of the language's k (settings 'k.<lang>', default 1) and the candidate's reviews_needed."""
    return max(int(reviews_needed or 1), int(ks.get(lang, 1)))


def set_k(store: Store, lang: str, k: int, user: User) -> None:
    user = authorize(user, "curator", store)
    if lang not in LANGS or int(k) < 1:
        raise InputError(f"invalid k {k!r} for {lang!r}", hint="k >= 1 and one of the ten language codes")
    store.set_setting(f"k.{lang}", str(int(k)))


# ---------------------------------------------------------------------------------------------------------------------
# The queue
#
# Ordering a million rows takes DuckDB 20-40 ms per language on two cores, so each process keeps, per language, the
# order of the first QUEUE_DEPTH open candidates (id + sort key only) for QUEUE_TTL seconds, or until the number of
# candidates changes. The cache only proposes; every proposal is checked exactly against candidates, decisions and leases
# inside the claiming transaction (under the language lock and counter), so a stale cache can make the order briefly
# stale but can never hand out an item twice or one that is already decided.
# ---------------------------------------------------------------------------------------------------------------------
QUEUE_TTL = 30.0
QUEUE_DEPTH = 256
_BASE = "c.gen_status = 'ok' AND c.review_status NOT IN ('accepted', 'edited', 'rejected')"
_ORDER_SQL = "ORDER BY c.selected DESC, abs(c.score - 0.5) ASC NULLS LAST, c.id"


def order_key(selected: bool | None, score: float | None, candidate_id: str) -> tuple:
    """Python twin of the SQL order: selected first, then |score - 0.5| smallest (no score last), then id."""
    return (0 if selected else 1, 1 if score is None else 0, 0.0 if score is None else abs(score - 0.5), candidate_id)


class ItemGone(InputError):
    """The item was completed by others while it was open here (e.g. a tab left open past its lease)."""


class _LangQueue:
    __slots__ = ("keys", "dead", "loaded", "count", "depth", "complete", "refreshing")

    def __init__(self):
        self.keys: list[tuple] = []
        self.dead: set[str] = set()
        self.loaded: float | None = None
        self.count = -1
        self.depth = QUEUE_DEPTH
        self.complete = False
        self.refreshing = False


_QUEUES: weakref.WeakKeyDictionary[Store, dict[str, _LangQueue]] = weakref.WeakKeyDictionary()


def _queue(store: Store, lang: str) -> _LangQueue:
    return _QUEUES.setdefault(store, {}).setdefault(lang, _LangQueue())


def _drop_from_queue(store: Store, lang: str, candidate_id: str) -> None:
    q = _QUEUES.get(store, {}).get(lang)
    if q is not None:
        q.dead.add(candidate_id)


def invalidate_queues(store: Store, langs: Iterable[str] | None = None) -> None:
    """Forget the cached order (all languages, or some): the next claim reads it afresh."""
    queues = _QUEUES.get(store, {})
    for lang in list(queues) if langs is None else langs:
        queues.pop(lang, None)


def _top(tx: Tx, lang: str, depth: int) -> list[tuple]:
    rows = tx.all(f"SELECT c.id, c.selected, c.score FROM candidates c WHERE {_BASE} AND c.lang = ? {_ORDER_SQL} LIMIT ?",
                  [lang, depth])
    return [order_key(sel, score, cid) for cid, sel, score in rows]


def _fill(q: _LangQueue, keys: list[tuple], count: int, depth: int) -> None:
    q.keys, q.dead, q.depth = keys, set(), depth
    q.loaded, q.count, q.complete = time.monotonic(), count, len(keys) < depth


def _refresh(tx: Tx, store: Store, lang: str, count: int, depth: int | None = None) -> _LangQueue:
    """The language's cached order. Read now when there is none (or deeper is asked for); when it is only old (TTL) or
    the number of candidates changed, keep serving it and read the new order in a background thread."""
    q = _queue(store, lang)
    if q.loaded is None or depth is not None:
        depth = depth or QUEUE_DEPTH
        _fill(q, _top(tx, lang, depth), count, depth)
    elif (q.count != count or time.monotonic() - q.loaded > QUEUE_TTL) and not q.refreshing:
        q.refreshing = True
        threading.Thread(target=_refresh_later, args=(store, lang, q, count), daemon=True,
                         name=f"xinstruct-queue-{lang}").start()
    return q


def _refresh_later(store: Store, lang: str, q: _LangQueue, count: int) -> None:
    try:
        depth = max(q.depth, QUEUE_DEPTH)
        with store.session() as tx:
            keys = _top(tx, lang, depth)
        with _serial(store, [lang]):
            if _QUEUES.get(store, {}).get(lang) is q:
                _fill(q, keys, count, depth)
    except Exception:  # noqa: BLE001 - a failed refresh only leaves the old order in place
        pass
    finally:
        q.refreshing = False


def _check(tx: Tx, user: User, ids: list[str], ks: Mapping[str, int], now) -> dict[str, tuple[str, str | None, int]]:
    """Exact state of candidates for `user`: id -> (verdict, lang, k); verdict 'ok' (claimable), 'blocked' (not for this
    user now: decided or skipped by them, or leases + completed reviews reach k) or 'dead' (final, not generated, k
    reviews done, or not in the user's languages)."""
    if not ids:
        return {}
    rows = {r[0]: r[1:] for r in tx.all(
        "SELECT id, lang, gen_status, review_status, reviews_needed FROM candidates WHERE id = ANY(?)", [ids])}
    logs: dict[str, list[dict]] = {}
    for cid, did, reviewer, action in tx.all(
            "SELECT candidate_id, id, reviewer, action FROM decisions WHERE candidate_id = ANY(?) ORDER BY id", [ids]):
        logs.setdefault(cid, []).append({"id": did, "reviewer": reviewer, "action": action})
    holders: dict[str, set[str]] = {}
    for cid, reviewer in tx.all("SELECT candidate_id, reviewer FROM leases WHERE candidate_id = ANY(?) AND expires_at > ?",
                                [ids, now]):
        holders.setdefault(cid, set()).add(reviewer)
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
    own = [r[0] for r in tx.all(
        "SELECT candidate_id FROM leases WHERE reviewer = ? AND expires_at > ? ORDER BY expires_at DESC, candidate_id",
        [user.name, now])]
    state = _check(tx, user, own, ks, now)
    for cid in own:
        if state[cid][0] == "ok":
            return cid, state[cid][1], state[cid][2]
    # 2. the cached order of each language, checked exactly a window at a time
    count = int(tx.scalar("SELECT count(*) FROM candidates"))
    langs = user.lang_list
    queues = {lang: _refresh(tx, store, lang, count) for lang in langs}
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
        stale = [lang for lang, q in queues.items() if q.count != count or time.monotonic() - q.loaded > QUEUE_TTL]
        deeper = [lang for lang, q in queues.items() if not q.complete or lang in stale]
        if not deeper:
            return None
        for lang in deeper:  # everything cached is taken (or old): read further down the order, now
            q = queues[lang]
            queues[lang] = _refresh(tx, store, lang, count, depth=q.depth if q.complete else min(q.depth * 8, 1 << 22))


def _first_ok(tx, store, user, window, ks, now):
    if not window:
        return None
    state = _check(tx, user, [cid for cid, _ in window], ks, now)
    for cid, lang in window:
        verdict, real_lang, k = state[cid]
        if verdict == "ok":
            return cid, real_lang, k
        if verdict == "dead":
            _drop_from_queue(store, lang, cid)
    return None


def _item(tx: Tx, candidate_id: str) -> dict | None:
    rows = tx.dicts(
        "SELECT c.id, c.doc_id, c.lang, c.instruction, c.response, c.label, c.score, c.label_reason, c.cluster, "
        "c.cluster_label, c.selected, c.reviews_needed, c.review_status, c.final_instruction, c.final_response, "
        "c.round_id, c.version FROM candidates c WHERE c.id = ?", [candidate_id])
    if not rows:
        return None
    item = rows[0]
    doc = tx.one("SELECT text, url, lang, lang_detected, lang_confidence, source, source_line FROM documents WHERE id = ?",
                 [item["doc_id"]])
    item.update(zip(("text", "url", "doc_lang", "lang_detected", "lang_confidence", "source", "source_line"),
                    doc or (None,) * 7))
    return item


def get_item(store: Store, candidate_id: str) -> dict | None:
    """A candidate with its document (text, url, doc_lang, source, source_line), as next_item returns it; no lease."""
    with store.session() as tx:
        return _item(tx, candidate_id)


def next_item(store: Store, user: User, lease_seconds: float = 600) -> dict | None:
    """Lease and return the next candidate for `user`, or None when their queue is empty.

    An item the user already holds an unexpired lease on comes first (a reload or an undo resumes it). Otherwise: a
    candidate in the user's languages with gen_status 'ok', not final, not decided (or skipped) by this user, and with
    completed reviews + other reviewers' unexpired leases < k; selected first, then the most informative (score nearest
    0.5; no score last), then id. The lease (re)starts at now + lease_seconds. Returns the candidate with its document
    (text, url, doc_lang, source, source_line), label, score, label_reason, cluster_label, k and lease_expires_at.
    """
    user = authorize(user, "reviewer", store)
    for lang in user.lang_list:
        _ensure_seq(store, lang)

    def claim(tx: Tx) -> dict | None:
        now = utcnow()
        ks = k_settings(tx)
        picked = _pick(tx, store, user, ks, now)
        if picked is None:
            return None
        cid, lang, k = picked
        _bump(tx, lang)
        expires = now + timedelta(seconds=lease_seconds)
        tx.execute("DELETE FROM leases WHERE reviewer = ? AND expires_at <= ?", [user.name, now])
        tx.execute("INSERT OR REPLACE INTO leases (candidate_id, reviewer, expires_at) VALUES (?, ?, ?)",
                   [cid, user.name, expires])
        item = _item(tx, cid)
        item["lease_expires_at"] = expires
        item["k"] = k
        item["draft"] = _parse_draft(tx.scalar("SELECT value FROM settings WHERE key = ?", [_draft_key(user, cid)]))
        return item

    with _serial(store, user.lang_list):
        return store.write(claim)


def release(store: Store, user: User, candidate_id: str) -> None:
    """Give an item back without a decision (e.g. the reviewer logs out)."""
    store.write(lambda tx: tx.execute("DELETE FROM leases WHERE candidate_id = ? AND reviewer = ?",
                                      [candidate_id, user.name]))


def _queue_size(tx: Tx, user: User, now) -> int:
    langs = user.lang_list
    ks = k_settings(tx)
    total, touched = tx.one(
        "SELECT count(*), list(c.id) FILTER (WHERE c.review_status <> 'pending' "
        "OR c.id IN (SELECT candidate_id FROM leases WHERE expires_at > ?) "
        "OR c.id IN (SELECT candidate_id FROM decisions WHERE reviewer = ?)) "
        f"FROM candidates c WHERE {_BASE} AND c.lang IN ({', '.join('?' for _ in langs)})",
        [now, user.name, *langs])
    touched = touched or []
    not_ok = 0
    for i in range(0, len(touched), 4096):
        not_ok += sum(1 for v in _check(tx, user, touched[i:i + 4096], ks, now).values() if v[0] != "ok")
    return int(total) - not_ok


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
        done = tx.scalar(
            "SELECT count(*) FROM decisions d WHERE d.reviewer = ? AND d.action IN ('accept', 'edit', 'reject') "
            "AND d.created_at >= ? AND d.id NOT IN (SELECT TRY_CAST(json_extract_string(after, '$.undoes') AS BIGINT) "
            "FROM decisions WHERE action = 'undo' AND reviewer = ? AND after IS NOT NULL)",
            [user.name, start, user.name])
        left = _queue_size(tx, user, now)
    return {"done_today": int(done or 0), "left_in_queue": left}


# ---------------------------------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------------------------------
def _log(tx: Tx, candidate_id: str) -> list[dict]:
    return tx.dicts("SELECT id, reviewer, action, after, reason FROM decisions WHERE candidate_id = ? ORDER BY id",
                    [candidate_id])


def _existing(store: Store, request_id: str | None) -> int | None:
    if not request_id:
        return None
    with store.session() as tx:
        return tx.scalar("SELECT id FROM decisions WHERE request_id = ?", [request_id])


def record_decision(store: Store, candidate_id: str, user: User, action: str, *, instruction: str | None = None,
                    response: str | None = None, reason: str | None = None, note: str | None = None,
                    request_id: str | None = None) -> int:
    """Append one decision and re-derive the candidate's review state, in one transaction; returns the decision id.

    A retry with the same `request_id` records nothing and returns the first id. accept/edit/reject/skip/undo need the
    reviewer role and the candidate's language; bulk_accept/send_to_review/adjudicate need a curator. reject needs a
    `reason` from REJECT_REASONS ('other' needs a `note`). An edit that changes nothing is recorded as an accept. An
    adjudicate with a `reason` rejects; with a changed instruction/response it edits; otherwise it accepts.
    """
    user = authorize(user, "reviewer", store)
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r}", hint=f"use one of {', '.join(ACTIONS)}")
    if action in CURATOR_ACTIONS:
        user = authorize(user, "curator", store)
    note = (note or "").strip() or None
    if action == "reject" or (action == "adjudicate" and reason):
        if reason not in REJECT_REASONS:
            raise InputError(f"unknown reject reason {reason!r}", hint=f"use one of {', '.join(REJECT_REASONS)}")
        if reason == "other" and not note:
            raise InputError("a reject with reason 'other' needs a description", hint="say what is wrong in the note")
    elif action not in ("adjudicate",):
        reason = reason or None
    if action == "edit" and instruction is None and response is None:
        raise InputError("an edit needs a new instruction or response")
    with store.session() as tx:
        found = tx.scalar("SELECT id FROM decisions WHERE request_id = ?", [request_id]) if request_id else None
        lang = None if found is not None else tx.scalar("SELECT lang FROM candidates WHERE id = ?", [candidate_id])
    if found is not None:
        return int(found)
    if lang is None:
        raise InputError(f"no candidate {candidate_id!r}")
    if not user.can_review(lang):
        raise AccessDenied(f"{user.name} reviews {', '.join(user.langs)}; this item is in {lang}")
    _ensure_seq(store, lang)

    def write(tx: Tx) -> int:
        if request_id:
            prior = tx.scalar("SELECT id FROM decisions WHERE request_id = ?", [request_id])
            if prior is not None:
                return int(prior)
        _bump(tx, lang)
        cand = tx.one("SELECT instruction, response, lang, reviews_needed, review_status FROM candidates WHERE id = ?",
                      [candidate_id])
        cur_instruction, cur_response, cur_lang, reviews_needed, old_status = cand
        outcome["old"] = old_status
        if cur_lang != lang:  # relabelled meanwhile
            if not user.can_review(cur_lang):
                raise AccessDenied(f"this item was relabelled to {cur_lang}, which {user.name} does not review")
        log = _log(tx, candidate_id)
        if action in COMPLETING:  # a tab left open past its lease: others may have completed the item meanwhile
            done_by = {d["reviewer"] for d in effective_decisions(log) if d["action"] in COMPLETING}
            k_now = k_for(cur_lang, reviews_needed, k_settings(tx))
            if user.name not in done_by and (old_status in FINAL_STATUSES or len(done_by) >= k_now):
                raise ItemGone("other reviewers completed this item while it was open here; your decision was "
                                 "not recorded", hint="go on with the next item")
        before = {"instruction": cur_instruction, "response": cur_response}
        act, after = action, None
        new_instruction = cur_instruction if instruction is None else instruction
        new_response = cur_response if response is None else response
        if act == "edit" and (new_instruction, new_response) == (cur_instruction, cur_response):
            act = "accept"
        if act in ("accept", "bulk_accept"):
            after = {"instruction": cur_instruction, "response": cur_response}
        elif act == "edit":
            after = {"instruction": new_instruction, "response": new_response,
                     "diff": {"instruction": word_diff(cur_instruction, new_instruction),
                              "response": word_diff(cur_response, new_response)}}
        elif act == "reject":
            after = {"reason": reason}
        elif act == "adjudicate":
            status = "rejected" if reason else (
                "edited" if (new_instruction, new_response) != (cur_instruction, cur_response) else "accepted")
            after = {"status": status, "instruction": new_instruction, "response": new_response}
            if status == "edited":
                after["diff"] = {"instruction": word_diff(cur_instruction, new_instruction),
                                 "response": word_diff(cur_response, new_response)}
        elif act == "undo":
            target = [d for d in effective_decisions(log) if d["reviewer"] == user.name]
            if not target:
                raise InputError("nothing of yours to undo on this item")
            after = {"undoes": int(target[-1]["id"]), "action": target[-1]["action"]}
        did = tx.scalar(
            "INSERT INTO decisions (request_id, candidate_id, reviewer, action, before, after, reason, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [request_id, candidate_id, user.name, act, to_json(before), None if after is None else to_json(after),
             reason, note])
        log.append({"id": did, "reviewer": user.name, "action": act, "after": after, "reason": reason})
        k = k_for(cur_lang, reviews_needed, k_settings(tx))
        state = derive_state(log, k)
        tx.execute("UPDATE candidates SET review_status = ?, final_instruction = ?, final_response = ? WHERE id = ?",
                   [state["review_status"], state["final_instruction"], state["final_response"], candidate_id])
        outcome["status"], outcome["lang"] = state["review_status"], cur_lang
        if act in REVIEW_ACTIONS or act in CURATOR_ACTIONS:
            tx.execute("DELETE FROM leases WHERE candidate_id = ? AND reviewer = ?", [candidate_id, user.name])
        if act == "edit" or (act == "adjudicate" and after["status"] == "edited"):
            version = tx.scalar("SELECT coalesce(max(version), 0) + 1 FROM candidate_versions WHERE candidate_id = ?",
                                [candidate_id])
            tx.execute("INSERT INTO candidate_versions (candidate_id, version, stage, instruction, reason) "
                       "VALUES (?, ?, 'human', ?, ?)",
                       [candidate_id, version, new_instruction, f"{act} by {user.name}"])
        return int(did)

    outcome: dict[str, str] = {}
    try:
        with _serial(store, [lang]):
            did = store.write(write)
            closed = (*FINAL_STATUSES, "conflict")
            if outcome.get("status") in closed:
                _drop_from_queue(store, outcome["lang"], candidate_id)
            elif outcome.get("old") in closed:  # reopened (undo, send_to_review): read the order afresh
                invalidate_queues(store, [outcome["lang"]])
            return did
    except StoreError:
        found = _existing(store, request_id)  # a concurrent retry with the same request_id won
        if found is not None:
            return int(found)
        raise


def last_decision(store: Store, user: User) -> dict | None:
    """The user's latest review decision still in force (what undo would take back)."""
    with store.session() as tx:
        rows = tx.dicts(
            "SELECT id, candidate_id, reviewer, action, before, after, reason, note, created_at FROM decisions "
            "WHERE reviewer = ? AND action IN ('accept', 'edit', 'reject', 'skip', 'bulk_accept', 'adjudicate', "
            "'send_to_review') AND id NOT IN (SELECT TRY_CAST(json_extract_string(after, '$.undoes') AS BIGINT) "
            "FROM decisions WHERE action = 'undo' AND reviewer = ? AND after IS NOT NULL) ORDER BY id DESC LIMIT 1",
            [user.name, user.name])
    return rows[0] if rows else None


def undo_last(store: Store, user: User, *, request_id: str | None = None, lease_seconds: float = 600) -> dict | None:
    """Take back the user's latest decision in force; returns that decision (or None). The item is leased back to the
    user, so next_item shows it again."""
    user = authorize(user, "reviewer", store)
    done = _existing(store, request_id)
    if done is not None:  # a retry of an undo that went through: report what it undid, change nothing
        with store.session() as tx:
            rows = tx.dicts(
                "SELECT id, candidate_id, reviewer, action, before, after, reason, note, created_at FROM decisions "
                "WHERE id = (SELECT TRY_CAST(json_extract_string(after, '$.undoes') AS BIGINT) FROM decisions "
                "WHERE id = ?)", [done])
        return rows[0] if rows else None
    last = last_decision(store, user)
    if last is None:
        return None
    record_decision(store, last["candidate_id"], user, "undo", request_id=request_id)
    expires = utcnow() + timedelta(seconds=lease_seconds)
    store.write(lambda tx: tx.execute(
        "INSERT OR REPLACE INTO leases (candidate_id, reviewer, expires_at) VALUES (?, ?, ?)",
        [last["candidate_id"], user.name, expires]))
    return last


# ---------------------------------------------------------------------------------------------------------------------
# Language correction, drafts, guidelines
# ---------------------------------------------------------------------------------------------------------------------
def set_document_lang(store: Store, doc_id: str, lang: str, user: User, *, candidate_id: str | None = None,
                      request_id: str | None = None) -> int | None:
    """A reviewer says the document is in `lang`: documents.lang and the language of its candidates change (so the item
    goes to that language's reviewers); recorded as a 'relabel_lang' decision with before/after. Needs the document's
    current language among the user's languages."""
    user = authorize(user, "reviewer", store)
    lang = (lang or "").strip().lower()
    if lang not in LANGS:
        raise InputError(f"unknown language code {lang!r}", hint=f"use one of {', '.join(LANGS)}")
    found = _existing(store, request_id)
    if found is not None:
        return int(found)
    with store.session() as tx:
        row = tx.one("SELECT lang FROM documents WHERE id = ?", [doc_id])
        cands = tx.all("SELECT id, lang FROM candidates WHERE doc_id = ? ORDER BY created_at DESC, id", [doc_id])
    if row is None:
        raise InputError(f"no document {doc_id!r}")
    old = row[0]
    langs_now = {old, *(c[1] for c in cands)} - {None}
    for code in langs_now:
        if not user.can_review(code):
            raise AccessDenied(f"{user.name} may not relabel a document in {code}")
    if old == lang and all(c[1] == lang for c in cands):
        return None
    target = candidate_id or (cands[0][0] if cands else f"doc:{doc_id}")
    for code in {*langs_now, lang}:
        _ensure_seq(store, code)

    def write(tx: Tx) -> int:
        for code in sorted({*langs_now, lang}):
            _bump(tx, code)
        tx.execute("UPDATE documents SET lang = ? WHERE id = ?", [lang, doc_id])
        tx.execute("UPDATE candidates SET lang = ? WHERE doc_id = ? AND lang <> ?", [lang, doc_id, lang])
        tx.execute("DELETE FROM leases WHERE candidate_id IN (SELECT id FROM candidates WHERE doc_id = ?)", [doc_id])
        return int(tx.scalar(
            "INSERT INTO decisions (request_id, candidate_id, reviewer, action, before, after) "
            "VALUES (?, ?, ?, 'relabel_lang', ?, ?) RETURNING id",
            [request_id, target, user.name, to_json({"doc_id": doc_id, "lang": old}),
             to_json({"doc_id": doc_id, "lang": lang})]))

    with _serial(store, {*langs_now, lang}):
        did = store.write(write)
        invalidate_queues(store, {*langs_now, lang})
        return did


def _draft_key(user: User, candidate_id: str) -> str:
    return f"draft.{user.name}.{candidate_id}"


def save_draft(store: Store, user: User, candidate_id: str, instruction: str, response: str) -> None:
    store.set_setting(_draft_key(user, candidate_id), to_json({"instruction": instruction, "response": response}))


def load_draft(store: Store, user: User, candidate_id: str) -> dict | None:
    """The user's unsaved edit of this candidate ({instruction, response}) or None. next_item returns it as 'draft'."""
    return _parse_draft(store.get_setting(_draft_key(user, candidate_id)))


def _parse_draft(value: str | None) -> dict | None:
    if not value:
        return None
    try:
        draft = json.loads(value)
    except ValueError:
        return None
    return draft if isinstance(draft, dict) else None


def clear_draft(store: Store, user: User, candidate_id: str) -> None:
    store.write(lambda tx: tx.execute("DELETE FROM settings WHERE key = ?", [_draft_key(user, candidate_id)]))


def get_guidelines(store: Store) -> str:
    return store.get_setting(GUIDELINES_KEY) or DEFAULT_GUIDELINES


def set_guidelines(store: Store, text: str, user: User) -> None:
    user = authorize(user, "curator", store)
    store.set_setting(GUIDELINES_KEY, text or "")
