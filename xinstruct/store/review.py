"""The review tables: the decision log, leases, drafts, per-language review settings and counters, guidelines.

Every statement the review queue (`xinstruct.review`) runs is a named function here. Most take a `Tx` because the queue
composes several of them in one transaction (a claim reads leases and decisions, bumps the language counter and writes
a lease, atomically); the caller opens the session or `store.write`. They return plain rows, dicts, or the small
records below, and know nothing of the review rules: `derive_state` and friends stay in `xinstruct.review.rules`.

The one SQL piece that encodes a rule is `UNDONE`: which decisions an undo took back. An undo row records the id it
cancels in `after.undoes`; the Python rule (`effective_decisions`) reaches the same answer from the log order, and
`record_decision` writes `undoes` from that rule, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .engine import Store, Tx

DEFAULT_K = 1
DEFAULT_LEASE_SECONDS = 600

# Open for review: generated fine and not final. (Conflicts stay open: they wait for a curator, but the queue checks them
# exactly and skips them once k reviews are in.)
OPEN = "c.gen_status = 'ok' AND c.review_status NOT IN ('accepted', 'edited', 'rejected')"
# The queue order: selected first, then the most informative (score nearest 0.5; no score last), then id.
# review.rules.order_key is its Python twin.
ORDER = "ORDER BY c.selected DESC, abs(c.score - 0.5) ASC NULLS LAST, c.id"
# The id of the decision an undo row took back (record_decision writes it as after.undoes).
_UNDOES = "TRY_CAST(json_extract_string(after, '$.undoes') AS BIGINT)"
# The ids of the decisions that `reviewer` (the one parameter) took back with an undo: the "undone decisions" set.
UNDONE = f"SELECT {_UNDOES} FROM decisions WHERE action = 'undo' AND reviewer = ? AND after IS NOT NULL"
_DECISION_COLUMNS = "id, candidate_id, reviewer, action, before, after, reason, note, created_at"


@dataclass(frozen=True)
class LangSettings:
    """A language's review settings: k (completed, agreeing reviews before an item is final) and the lease length."""

    lang: str
    k: int = DEFAULT_K
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    updated_by: str | None = None
    updated_at: datetime | None = None


# -- review settings -------------------------------------------------------------------------------------------------
def lang_settings(tx: Tx) -> dict[str, LangSettings]:
    """The languages with stored settings (a language without a row uses the defaults)."""
    return {lang: LangSettings(lang, int(k), int(lease), by, at) for lang, k, lease, by, at in tx.all(
        "SELECT lang, reviews_needed, lease_seconds, updated_by, updated_at FROM review_settings ORDER BY lang")}


def ks(tx: Tx) -> dict[str, int]:
    """k per language, for the languages that set one (read once per claim and decision)."""
    return {lang: max(1, int(k)) for lang, k in tx.all("SELECT lang, reviews_needed FROM review_settings")}


def lease_seconds(tx: Tx, lang: str) -> int:
    """How long a claim of an item in `lang` lasts."""
    value = tx.scalar("SELECT lease_seconds FROM review_settings WHERE lang = ?", [lang])
    return DEFAULT_LEASE_SECONDS if value is None else int(value)


def save_lang_settings(tx: Tx, lang: str, *, k: int | None = None, lease_seconds: int | None = None,
                       by: str | None = None) -> None:
    """Set k and/or the lease length of a language (what is not given keeps its value, or the default)."""
    tx.execute(
        "INSERT INTO review_settings (lang, reviews_needed, lease_seconds, updated_by, updated_at) "
        "VALUES (?, coalesce(?, ?), coalesce(?, ?), ?, current_timestamp) "
        "ON CONFLICT (lang) DO UPDATE SET reviews_needed = coalesce(?, review_settings.reviews_needed), "
        "lease_seconds = coalesce(?, review_settings.lease_seconds), updated_by = excluded.updated_by, "
        "updated_at = excluded.updated_at",
        [lang, k, DEFAULT_K, lease_seconds, DEFAULT_LEASE_SECONDS, by, k, lease_seconds])


# -- per-language counters -------------------------------------------------------------------------------------------
def counter_exists(tx: Tx, lang: str) -> bool:
    return tx.scalar("SELECT count(*) FROM review_counters WHERE lang = ?", [lang]) > 0


def create_counter(tx: Tx, lang: str) -> None:
    tx.execute("INSERT OR IGNORE INTO review_counters (lang, seq) VALUES (?, 0)", [lang])


def bump_counter(tx: Tx, lang: str) -> None:
    """Change the language's counter row, so that this transaction conflicts with every other one that bumps it."""
    tx.execute("UPDATE review_counters SET seq = seq + 1 WHERE lang = ?", [lang])


# -- candidates as the queue sees them -------------------------------------------------------------------------------
def open_order(tx: Tx, lang: str, depth: int) -> list[tuple[str, bool | None, float | None]]:
    """The first `depth` open candidates of a language in queue order: (id, selected, score)."""
    return tx.all(f"SELECT c.id, c.selected, c.score FROM candidates c WHERE {OPEN} AND c.lang = ? {ORDER} LIMIT ?",
                  [lang, depth])


def candidate_count(tx: Tx) -> int:
    """All candidates (the queue cache re-reads its order when this changes)."""
    return int(tx.scalar("SELECT count(*) FROM candidates"))


def queue_states(tx: Tx, ids: Sequence[str]) -> dict[str, tuple[str, str, str, int]]:
    """id -> (lang, gen_status, review_status, reviews_needed) for the candidates that exist."""
    return {r[0]: r[1:] for r in tx.all(
        "SELECT id, lang, gen_status, review_status, reviews_needed FROM candidates WHERE id = ANY(?)", [list(ids)])}


def action_logs(tx: Tx, ids: Sequence[str]) -> dict[str, list[dict]]:
    """id -> its decisions as {id, reviewer, action}, in log order (enough for `effective_decisions`)."""
    logs: dict[str, list[dict]] = {}
    for cid, did, reviewer, action in tx.all(
            "SELECT candidate_id, id, reviewer, action FROM decisions WHERE candidate_id = ANY(?) ORDER BY id",
            [list(ids)]):
        logs.setdefault(cid, []).append({"id": did, "reviewer": reviewer, "action": action})
    return logs


def open_scan(tx: Tx, reviewer: str, langs: Sequence[str], now: datetime) -> tuple[int, list[str]]:
    """One scan for a reviewer's queue size: (open candidates in `langs`, the ids among them that anybody touched —
    not pending, leased now, or decided by this reviewer — which the caller checks exactly)."""
    total, touched = tx.one(
        "SELECT count(*), list(c.id) FILTER (WHERE c.review_status <> 'pending' "
        "OR c.id IN (SELECT candidate_id FROM leases WHERE expires_at > ?) "
        "OR c.id IN (SELECT candidate_id FROM decisions WHERE reviewer = ?)) "
        f"FROM candidates c WHERE {OPEN} AND c.lang IN ({', '.join('?' for _ in langs)})",
        [now, reviewer, *langs])
    return int(total), list(touched or [])


def item(tx: Tx, candidate_id: str) -> dict | None:
    """A candidate with what a reviewer sees of its document (text, url, doc_lang, lang_detected, lang_confidence,
    source, source_line)."""
    rows = tx.dicts(
        "SELECT c.id, c.doc_id, c.lang, c.instruction, c.response, c.label, c.score, c.label_reason, c.cluster, "
        "c.cluster_label, c.selected, c.reviews_needed, c.review_status, c.final_instruction, c.final_response, "
        "c.round_id, c.version FROM candidates c WHERE c.id = ?", [candidate_id])
    if not rows:
        return None
    out = rows[0]
    doc = tx.one("SELECT text, url, lang, lang_detected, lang_confidence, source, source_line FROM documents "
                 "WHERE id = ?", [out["doc_id"]])
    out.update(zip(("text", "url", "doc_lang", "lang_detected", "lang_confidence", "source", "source_line"),
                   doc or (None,) * 7))
    return out


# -- leases ----------------------------------------------------------------------------------------------------------
def leased_by(tx: Tx, reviewer: str, now: datetime) -> list[str]:
    """The candidates `reviewer` holds an unexpired lease on, the latest-expiring first."""
    return [r[0] for r in tx.all(
        "SELECT candidate_id FROM leases WHERE reviewer = ? AND expires_at > ? ORDER BY expires_at DESC, candidate_id",
        [reviewer, now])]


def lease_holders(tx: Tx, ids: Sequence[str], now: datetime) -> dict[str, set[str]]:
    """id -> the reviewers holding an unexpired lease on it."""
    holders: dict[str, set[str]] = {}
    for cid, reviewer in tx.all(
            "SELECT candidate_id, reviewer FROM leases WHERE candidate_id = ANY(?) AND expires_at > ?", [list(ids), now]):
        holders.setdefault(cid, set()).add(reviewer)
    return holders


def put_lease(tx: Tx, candidate_id: str, reviewer: str, expires_at: datetime) -> None:
    """Lease (or re-lease) an item to a reviewer until `expires_at`."""
    tx.execute("INSERT OR REPLACE INTO leases (candidate_id, reviewer, expires_at) VALUES (?, ?, ?)",
               [candidate_id, reviewer, expires_at])


def drop_lease(tx: Tx, candidate_id: str, reviewer: str) -> None:
    tx.execute("DELETE FROM leases WHERE candidate_id = ? AND reviewer = ?", [candidate_id, reviewer])


def drop_expired_leases(tx: Tx, reviewer: str, now: datetime) -> None:
    tx.execute("DELETE FROM leases WHERE reviewer = ? AND expires_at <= ?", [reviewer, now])


# -- the decision log ------------------------------------------------------------------------------------------------
def decision_for_request(tx: Tx, request_id: str | None) -> int | None:
    """The id of the decision recorded under this idempotency key, if any."""
    if not request_id:
        return None
    found = tx.scalar("SELECT id FROM decisions WHERE request_id = ?", [request_id])
    return None if found is None else int(found)


def candidate_lang(tx: Tx, candidate_id: str) -> str | None:
    return tx.scalar("SELECT lang FROM candidates WHERE id = ?", [candidate_id])


def decision_target(tx: Tx, candidate_id: str) -> tuple[str | None, str, str, int, str] | None:
    """What a decision needs of its candidate: (instruction, response, lang, reviews_needed, review_status)."""
    return tx.one("SELECT instruction, response, lang, reviews_needed, review_status FROM candidates WHERE id = ?",
                  [candidate_id])


def decision_log(tx: Tx, candidate_id: str) -> list[dict]:
    """A candidate's whole log as `derive_state` reads it: {id, reviewer, action, after (JSON text), reason}."""
    return tx.dicts("SELECT id, reviewer, action, after, reason FROM decisions WHERE candidate_id = ? ORDER BY id",
                    [candidate_id])


def decision_logs(tx: Tx, ids: Sequence[str]) -> dict[str, list[dict]]:
    """Several candidates' logs at once: id -> [{id, reviewer, action, after, reason}] in log order."""
    logs: dict[str, list[dict]] = {}
    for row in tx.dicts("SELECT candidate_id, id, reviewer, action, after, reason FROM decisions "
                        "WHERE candidate_id = ANY(?) ORDER BY id", [list(ids)]):
        logs.setdefault(row.pop("candidate_id"), []).append(row)
    return logs


def logs_up_to(store: Store, watermark: int, langs: Sequence[str] = ()) -> tuple[list[dict], dict[str, int]]:
    """Every candidate (of `langs`, else all) with a decision at or before `watermark`: id, lang, reviews_needed, its
    stored review_status / final_instruction / final_response, `later` (whether it has decisions after the watermark)
    and `log` (its decisions up to the watermark as `derive_state` reads them); and the k per language now in force."""
    lang_sql, params = ("AND c.lang = ANY(?)", [list(langs)]) if langs else ("", [])
    with store.session() as tx:
        rows = tx.dicts(
            "SELECT c.id, c.lang, c.reviews_needed, c.review_status, c.final_instruction, c.final_response, "
            "EXISTS (SELECT 1 FROM decisions x WHERE x.candidate_id = c.id AND x.id > ?) AS later "
            "FROM candidates c WHERE EXISTS (SELECT 1 FROM decisions x WHERE x.candidate_id = c.id AND x.id <= ?) "
            f"{lang_sql} ORDER BY c.id", [int(watermark), int(watermark), *params])
        logs: dict[str, list[dict]] = {}
        for row in tx.dicts("SELECT d.candidate_id, d.id, d.reviewer, d.action, d.after, d.reason FROM decisions d "
                            "JOIN candidates c ON c.id = d.candidate_id "
                            f"WHERE d.id <= ? {lang_sql} ORDER BY d.id", [int(watermark), *params]):
            logs.setdefault(row.pop("candidate_id"), []).append(row)
        k = ks(tx)
    for r in rows:
        r["log"] = logs.get(r["id"], [])
    return rows, k


def add_decision(tx: Tx, *, candidate_id: str, reviewer: str, action: str, before: str | None = None,
                 after: str | None = None, reason: str | None = None, note: str | None = None,
                 request_id: str | None = None) -> int:
    """Append one decision (before/after as JSON text); returns its id."""
    return int(tx.scalar(
        "INSERT INTO decisions (request_id, candidate_id, reviewer, action, before, after, reason, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [request_id, candidate_id, reviewer, action, before, after, reason, note]))


def set_review_state(tx: Tx, candidate_id: str, status: str, final_instruction: str | None,
                     final_response: str | None) -> None:
    """Store the state derived from a candidate's log."""
    tx.execute("UPDATE candidates SET review_status = ?, final_instruction = ?, final_response = ? WHERE id = ?",
               [status, final_instruction, final_response, candidate_id])


def review_states(tx: Tx, lang: str, statuses: Iterable[str]) -> list[tuple[str, int, str, str | None, str | None]]:
    """(id, reviews_needed, review_status, final_instruction, final_response) of the candidates of `lang` in
    `statuses`."""
    statuses = list(statuses)
    return tx.all("SELECT id, reviews_needed, review_status, final_instruction, final_response FROM candidates "
                  f"WHERE lang = ? AND review_status IN ({', '.join('?' for _ in statuses)}) ORDER BY id",
                  [lang, *statuses])


def add_human_version(tx: Tx, candidate_id: str, instruction: str | None, reason: str) -> None:
    """Record a reviewer's or curator's edit as the candidate's next version (stage 'human')."""
    version = tx.scalar("SELECT coalesce(max(version), 0) + 1 FROM candidate_versions WHERE candidate_id = ?",
                        [candidate_id])
    tx.execute("INSERT INTO candidate_versions (candidate_id, version, stage, instruction, reason) "
               "VALUES (?, ?, 'human', ?, ?)", [candidate_id, version, instruction, reason])


def last_in_force(tx: Tx, reviewer: str, actions: Sequence[str]) -> dict | None:
    """The reviewer's latest decision among `actions` that no undo of theirs took back (what an undo would cancel)."""
    rows = tx.dicts(
        f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE reviewer = ? "
        f"AND action IN ({', '.join('?' for _ in actions)}) AND id NOT IN ({UNDONE}) ORDER BY id DESC LIMIT 1",
        [reviewer, *actions, reviewer])
    return rows[0] if rows else None


def undone_by(tx: Tx, undo_id: int) -> dict | None:
    """The decision that the undo `undo_id` took back."""
    rows = tx.dicts(f"SELECT {_DECISION_COLUMNS} FROM decisions "
                    f"WHERE id = (SELECT {_UNDOES} FROM decisions WHERE id = ?)", [undo_id])
    return rows[0] if rows else None


def completed_since(tx: Tx, reviewer: str, since: datetime, actions: Sequence[str]) -> int:
    """The reviewer's decisions among `actions` made since `since` and not undone."""
    return int(tx.scalar(
        f"SELECT count(*) FROM decisions WHERE reviewer = ? AND action IN ({', '.join('?' for _ in actions)}) "
        f"AND created_at >= ? AND id NOT IN ({UNDONE})", [reviewer, *actions, since, reviewer]) or 0)


# -- a document's language -------------------------------------------------------------------------------------------
def document_lang(tx: Tx, doc_id: str) -> tuple[bool, str | None]:
    """(the document exists, its language)."""
    row = tx.one("SELECT lang FROM documents WHERE id = ?", [doc_id])
    return (False, None) if row is None else (True, row[0])


def document_candidates(tx: Tx, doc_id: str) -> list[tuple[str, str]]:
    """(id, lang) of a document's candidates, the newest first."""
    return tx.all("SELECT id, lang FROM candidates WHERE doc_id = ? ORDER BY created_at DESC, id", [doc_id])


def relabel_document(tx: Tx, doc_id: str, lang: str) -> None:
    """Move a document and its candidates to `lang`; their leases end (the item goes to that language's reviewers)."""
    tx.execute("UPDATE documents SET lang = ? WHERE id = ?", [lang, doc_id])
    tx.execute("UPDATE candidates SET lang = ? WHERE doc_id = ? AND lang <> ?", [lang, doc_id, lang])
    tx.execute("DELETE FROM leases WHERE candidate_id IN (SELECT id FROM candidates WHERE doc_id = ?)", [doc_id])


# -- drafts ----------------------------------------------------------------------------------------------------------
def save_draft(tx: Tx, reviewer: str, candidate_id: str, instruction: str | None, response: str | None) -> None:
    tx.execute("INSERT OR REPLACE INTO drafts (reviewer, candidate_id, instruction, response, saved_at) "
               "VALUES (?, ?, ?, ?, current_timestamp)", [reviewer, candidate_id, instruction, response])


def draft(tx: Tx, reviewer: str, candidate_id: str) -> dict | None:
    """The reviewer's unsaved edit of a candidate as {instruction, response}, or None."""
    row = tx.one("SELECT instruction, response FROM drafts WHERE reviewer = ? AND candidate_id = ?",
                 [reviewer, candidate_id])
    return None if row is None else {"instruction": row[0], "response": row[1]}


def clear_draft(tx: Tx, reviewer: str, candidate_id: str) -> None:
    tx.execute("DELETE FROM drafts WHERE reviewer = ? AND candidate_id = ?", [reviewer, candidate_id])


# -- guidelines ------------------------------------------------------------------------------------------------------
def guidelines(tx: Tx) -> str | None:
    """The guidelines in force (the latest saved), or None when none were ever saved."""
    return tx.scalar("SELECT text FROM guidelines ORDER BY id DESC LIMIT 1")


def save_guidelines(tx: Tx, text: str, by: str | None) -> None:
    """Save a new version of the guidelines (the earlier ones stay as history)."""
    tx.execute("INSERT INTO guidelines (text, saved_by) VALUES (?, ?)", [text, by])
