"""Curation: look at the whole store, filter candidates, act on many at once, settle disagreements.

No Streamlit here: the curator pages and the CLI call these functions and render what they return.

* `overview` — per language: documents kept / dropped by reason, candidates by label, review status, acceptance and edit
  rates, mean edit distance of the instruction.
* `CandidateFilter` — the one filter of the explore and export pages; `where()` builds a parameterised SQL condition
  (every user value is a `?` parameter, never SQL text).
* `search`, `count` — the rows a filter selects.
* `bulk_send_to_review`, `bulk_accept_above` — one logged decision per affected candidate, written through
  `review.record_decision` under the curator's name, in chunks.
* `reviewer_stats` — throughput per reviewer per day, agreement (Krippendorff's alpha, pairwise agreement rates).
* `conflicts`, `adjudicate` — items whose reviewers disagreed, and the curator's final word.
* Chart data: `score_histogram`, `progress`, `embedding_map`, `top_topics` (with `verb_object`).

Who reviewed what is read from the decision log with the rule of record of `review.derive_state`: a reviewer's
*verdict* on a candidate is their latest accept / edit / reject that is still in force (not taken back by an `undo`, not
before a `send_to_review`). Two verdicts agree when they are the same action and, for edits, the same edited text;
anything else is what makes a candidate a 'conflict'.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .langs import LANGS
from .store import Store

LABELS = ("good", "flawed", "bad")
UNLABELED = "unlabeled"  # filter value for candidates the evaluator has not labelled yet
STATUSES = ("pending", "in_review", "accepted", "edited", "rejected", "conflict")
AGREEMENT = ("any", "agree", "disagree")
KEPT = ("accepted", "edited")  # final states of a pair that goes into the data

# The verdicts in force, as review.derive_state counts them: per (candidate, reviewer) the latest accept / edit / reject
# not undone (an undo names the decision it takes back in after.undoes) and not before the candidate's latest
# send_to_review in force. Columns: candidate_id, reviewer, verdict (accept | edit | reject), verdict_key (the action,
# for an edit with a hash of the edited text: equal keys = agreement), keep (accept or edit), decided_at.
# Only candidates on which two or more people ever gave a verdict are looked at: agreement needs two, and this keeps the
# window over the log small when most items have one review.
_UNDONE = ("SELECT TRY_CAST(json_extract_string(after, '$.undoes') AS BIGINT) FROM decisions "
           "WHERE action = 'undo' AND after IS NOT NULL AND json_extract_string(after, '$.undoes') IS NOT NULL")
_MULTI = ("SELECT candidate_id FROM decisions WHERE action IN ('accept', 'edit', 'reject') GROUP BY 1 "
          "HAVING count(DISTINCT reviewer) >= 2")
MULTI_VERDICTS_SQL = f"""
    SELECT candidate_id, reviewer, action AS verdict, verdict_key, action <> 'reject' AS keep, created_at AS decided_at
    FROM (
        SELECT d.candidate_id, d.reviewer, d.action, d.created_at,
               CASE WHEN d.action = 'edit' THEN 'edit:' || md5(
                   coalesce(json_extract_string(d.after, '$.instruction'), '') || chr(1) ||
                   coalesce(json_extract_string(d.after, '$.response'), '')) ELSE d.action END AS verdict_key,
               row_number() OVER (PARTITION BY d.candidate_id, d.reviewer ORDER BY d.id DESC) AS rn
        FROM decisions d
        LEFT JOIN (
            SELECT candidate_id, max(id) AS rid FROM decisions
            WHERE action = 'send_to_review' AND id NOT IN ({_UNDONE}) GROUP BY candidate_id
        ) r ON r.candidate_id = d.candidate_id
        WHERE d.action IN ('accept', 'edit', 'reject') AND d.id > coalesce(r.rid, -1) AND d.id NOT IN ({_UNDONE})
          AND d.candidate_id IN ({_MULTI})
    ) WHERE rn = 1
"""
# The same for every candidate (each reviewer's verdict in force, also where only one person reviewed).
VERDICTS_SQL = MULTI_VERDICTS_SQL.replace(f"\n          AND d.candidate_id IN ({_MULTI})", "")


# ---------------------------------------------------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CandidateFilter:
    """Which candidates a curator is looking at. Empty fields do not filter."""

    langs: tuple[str, ...] = ()  # language codes (bn fi hi id sw ta th tr ur vi)
    labels: tuple[str, ...] = ()  # evaluator labels: good flawed bad, or 'unlabeled'
    min_score: float | None = None  # evaluator score >= this (candidates without a score are left out)
    max_score: float | None = None  # evaluator score <= this
    clusters: tuple[int, ...] = ()  # diversification cluster numbers
    statuses: tuple[str, ...] = ()  # review status: pending in_review accepted edited rejected conflict
    reviewer: str | None = None  # only candidates this reviewer decided on
    agreement: str = "any"  # any | agree | disagree: among candidates with verdicts from two or more reviewers
    #                         (agree: all the same action, and the same text for edits; as review.derive_state)
    search: str | None = None  # case-insensitive substring of the instruction or response (current or final)

    def __post_init__(self) -> None:
        # Accept lists from widgets and the CLI; store tuples so the filter is hashable and cacheable.
        for name in ("langs", "labels", "clusters", "statuses"):
            value = getattr(self, name)
            if value is None:
                value = ()
            elif isinstance(value, (str, int)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if self.search is not None and not str(self.search).strip():
            object.__setattr__(self, "search", None)
        if self.reviewer is not None and not str(self.reviewer).strip():
            object.__setattr__(self, "reviewer", None)

    def validate(self) -> CandidateFilter:
        bad = [x for x in self.langs if x not in LANGS]
        if bad:
            raise InputError(f"unknown language code(s) {', '.join(map(str, bad))}", hint=f"use {' '.join(LANGS)}")
        bad = [x for x in self.labels if x not in (*LABELS, UNLABELED)]
        if bad:
            raise InputError(f"unknown label(s) {', '.join(map(str, bad))}", hint=f"use {' '.join(LABELS)} {UNLABELED}")
        bad = [x for x in self.statuses if x not in STATUSES]
        if bad:
            raise InputError(f"unknown review status(es) {', '.join(map(str, bad))}", hint=f"use {' '.join(STATUSES)}")
        if self.agreement not in AGREEMENT:
            raise InputError(f"unknown agreement {self.agreement!r}", hint="use any, agree or disagree")
        for name in ("min_score", "max_score"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (int, float)):
                raise InputError(f"{name} must be a number, got {value!r}")
        for c in self.clusters:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
                raise InputError(f"cluster must be an integer, got {c!r}")
        return self

    def where(self, alias: str = "c") -> tuple[str, list[Any]]:
        """A SQL condition on the candidates table (under `alias`) and its parameters. Pure; always valid SQL."""
        self.validate()
        a = alias
        parts: list[str] = []
        params: list[Any] = []

        def in_list(column: str, values: Iterable[Any]) -> None:
            values = list(values)
            parts.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)

        if self.langs:
            in_list(f"{a}.lang", self.langs)
        if self.labels:
            named = [x for x in self.labels if x != UNLABELED]
            ors = []
            if named:
                ors.append(f"{a}.label IN ({', '.join('?' for _ in named)})")
                params.extend(named)
            if UNLABELED in self.labels:
                ors.append(f"{a}.label IS NULL")
            parts.append("(" + " OR ".join(ors) + ")")
        if self.min_score is not None:
            parts.append(f"{a}.score >= ?")
            params.append(float(self.min_score))
        if self.max_score is not None:
            parts.append(f"{a}.score <= ?")
            params.append(float(self.max_score))
        if self.clusters:
            in_list(f"{a}.cluster", [int(c) for c in self.clusters])
        if self.statuses:
            in_list(f"{a}.review_status", self.statuses)
        if self.reviewer:
            parts.append(f"{a}.id IN (SELECT candidate_id FROM decisions WHERE reviewer = ?)")
            params.append(str(self.reviewer))
        if self.agreement != "any":
            having = "= 1" if self.agreement == "agree" else "> 1"
            parts.append(
                f"{a}.id IN (SELECT candidate_id FROM ({MULTI_VERDICTS_SQL}) GROUP BY candidate_id "
                f"HAVING count(*) >= 2 AND count(DISTINCT verdict_key) {having})"
            )
        if self.search:
            pattern = "%" + _escape_like(str(self.search)) + "%"
            cols = ("instruction", "response", "final_instruction", "final_response")
            parts.append("(" + " OR ".join(f"{a}.{col} ILIKE ? ESCAPE '\\'" for col in cols) + ")")
            params.extend([pattern] * len(cols))
        return (" AND ".join(parts) if parts else "TRUE"), params

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _escape_like(text: str) -> str:
    """Make `text` match literally inside an ILIKE pattern (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---------------------------------------------------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------------------------------------------------
EDIT_DISTANCE_SAMPLE = 2000
RATES_CAPTION = ("Acceptance = (accepted + edited) / decided; edit rate = edited / (accepted + edited); edit distance = "
                 f"characters changed in the instruction, mean over edited pairs (up to {EDIT_DISTANCE_SAMPLE:,} each).")
_RATE_GROUPS = {"lang": "lang", "round": "round_id"}


def rates(accepted: int, edited: int, rejected: int) -> dict[str, float | int | None]:
    """The one definition of the review rates, used by every page, the round report and the dataset card.

    decided = accepted + edited + rejected; acceptance = (accepted + edited) / decided (the pairs that go into the
    data, as `--status accepted` exports them); edit rate = edited / (accepted + edited) (the share of kept pairs that
    needed a correction). None where the denominator is 0."""
    decided, kept = accepted + edited + rejected, accepted + edited
    return {"decided": decided, "acceptance_rate": kept / decided if decided else None,
            "edit_rate": edited / kept if kept else None}


def review_rates(store: Store, by: Sequence[str] = ("lang",), langs: Iterable[str] | None = None) -> dict[tuple, dict]:
    """Review rates per group (`by`: "lang" and/or "round"), keyed by the tuple of group values.

    Each value: accepted, edited, rejected, decided, acceptance_rate, edit_rate (see `rates`) and mean_edit_distance:
    the mean character Levenshtein distance between the generated instruction and the final one over edited pairs (at
    most EDIT_DISTANCE_SAMPLE per group, a fixed sample by id hash, so that it stays cheap on a large store), None
    without edits. Only groups with a decided candidate appear."""
    unknown = [g for g in by if g not in _RATE_GROUPS]
    if unknown or not by:
        raise InputError(f"cannot group review rates by {', '.join(unknown) or 'nothing'}",
                         hint=f"use {', '.join(_RATE_GROUPS)}")
    cols = ", ".join(_RATE_GROUPS[g] for g in by)
    want = list(langs) if langs is not None else None
    lang_sql = f"AND lang IN ({', '.join('?' * len(want))})" if want else ""
    with store.session() as tx:
        counts = tx.all(
            f"SELECT {cols}, count(*) FILTER (review_status = 'accepted'), count(*) FILTER (review_status = 'edited'), "
            f"count(*) FILTER (review_status = 'rejected') FROM candidates "
            f"WHERE review_status IN ('accepted', 'edited', 'rejected') {lang_sql} GROUP BY ALL", want or [])
        distances = tx.all(
            f"SELECT {cols}, avg(levenshtein(instruction, final_instruction)) FROM ("
            f"  SELECT {cols}, instruction, final_instruction,"
            f"         row_number() OVER (PARTITION BY {cols} ORDER BY hash(id), id) AS rn FROM candidates"
            f"  WHERE review_status = 'edited' AND final_instruction IS NOT NULL AND instruction IS NOT NULL {lang_sql}"
            f") WHERE rn <= ? GROUP BY ALL", [*(want or []), EDIT_DISTANCE_SAMPLE])
    n = len(by)
    dist = {tuple(r[:n]): float(r[n]) for r in distances}
    out = {}
    for r in counts:
        key, (accepted, edited, rejected) = tuple(r[:n]), r[n:]
        out[key] = {"accepted": accepted, "edited": edited, "rejected": rejected, **rates(accepted, edited, rejected),
                    "mean_edit_distance": dist.get(key)}
    return out


def overview(store: Store, langs: Iterable[str] | None = None) -> list[dict]:
    """One row per language (those given, else those in the store), in LANGS order.

    Rates (decided, acceptance_rate, edit_rate, mean_edit_distance) come from `review_rates`, the one definition.
    Keys: lang, language, docs_kept, docs_dropped, dropped (dict reason -> n), candidates, labels (dict), status (dict),
    decided, acceptance_rate, edit_rate, mean_edit_distance.
    """
    want = list(langs) if langs else None
    if want:
        CandidateFilter(langs=tuple(want)).validate()
    with store.session() as tx:
        docs = tx.all(
            "SELECT lang, status, coalesce(drop_reason, 'unknown'), count(*) FROM documents "
            "WHERE lang IS NOT NULL GROUP BY ALL"
        )
        labels = tx.all("SELECT lang, coalesce(label, ?), count(*) FROM candidates GROUP BY ALL", [UNLABELED])
        status = tx.all("SELECT lang, review_status, count(*) FROM candidates GROUP BY ALL")
    by_lang = review_rates(store, ("lang",), want)
    present = {r[0] for r in docs} | {r[0] for r in labels}
    codes = [c for c in LANGS if (c in want if want else c in present)]
    codes += sorted(c for c in present if c not in LANGS and not want)  # codes outside our ten, if any
    rows = []
    for code in codes:
        dropped = {reason: n for lang, st, reason, n in docs if lang == code and st == "dropped"}
        kept = sum(n for lang, st, _, n in docs if lang == code and st == "kept")
        lab = {k: 0 for k in (*LABELS, UNLABELED)}
        lab.update({label: n for lang, label, n in labels if lang == code})
        stat = {k: 0 for k in STATUSES}
        stat.update({s: n for lang, s, n in status if lang == code})
        rated = by_lang.get((code,)) or {**rates(0, 0, 0), "mean_edit_distance": None}
        rows.append(
            {
                "lang": code,
                "language": LANGS[code].name if code in LANGS else code,
                "docs_kept": kept,
                "docs_dropped": sum(dropped.values()),
                "dropped": dict(sorted(dropped.items())),
                "candidates": sum(lab.values()),
                "labels": lab,
                "status": stat,
                "decided": rated["decided"],
                "acceptance_rate": rated["acceptance_rate"],
                "edit_rate": rated["edit_rate"],
                "mean_edit_distance": rated["mean_edit_distance"],
            }
        )
    return rows


def overview_frame(rows: list[dict]) -> pd.DataFrame:
    """`overview` rows flattened into one table (dicts become columns such as `dropped:too_short`)."""
    flat = []
    for r in rows:
        out = {}
        for k, v in r.items():
            if isinstance(v, dict):
                out.update({f"{k}:{kk}": vv for kk, vv in v.items()})
            else:
                out[k] = v
        flat.append(out)
    df = pd.DataFrame(flat)
    drop_cols = [c for c in df.columns if c.startswith("dropped:")]
    if drop_cols:
        df[drop_cols] = df[drop_cols].fillna(0).astype(int)
    return df


# ---------------------------------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------------------------------
SEARCH_COLUMNS = (
    "id", "lang", "label", "score", "cluster", "review_status", "selected", "instruction", "response", "reviews",
    "decisions",
)


def search(store: Store, filt: CandidateFilter | None = None, limit: int = 100, offset: int = 0) -> pd.DataFrame:
    """The candidates a filter selects, best score first (then id): instruction and response as finally edited (else
    current; the response cut to 300 characters), `reviews` = verdicts in force, `decisions` = entries in the log."""
    filt = filt or CandidateFilter()
    where, params = filt.where("c")
    sql = f"""
        SELECT c.id, c.lang, c.label, c.score, c.cluster, c.review_status, c.selected,
               coalesce(c.final_instruction, c.instruction) AS instruction,
               left(coalesce(c.final_response, c.response), 300) AS response
        FROM candidates c WHERE {where}
        ORDER BY c.score DESC NULLS LAST, c.id
        LIMIT ? OFFSET ?
    """
    with store.session() as tx:
        df = tx.df(sql, [*params, int(limit), int(offset)])
        ids = df["id"].tolist()
        marks = ", ".join("?" for _ in ids) or "NULL"
        reviews = dict(tx.all(f"SELECT candidate_id, count(*) FROM ({VERDICTS_SQL}) WHERE candidate_id IN ({marks}) "
                              "GROUP BY 1", ids)) if ids else {}
        logged = dict(tx.all(f"SELECT candidate_id, count(*) FROM decisions WHERE candidate_id IN ({marks}) "
                             "GROUP BY 1", ids)) if ids else {}
    df["reviews"] = [int(reviews.get(i, 0)) for i in ids]
    df["decisions"] = [int(logged.get(i, 0)) for i in ids]
    return df[list(SEARCH_COLUMNS)]


def count(store: Store, filt: CandidateFilter | None = None) -> int:
    filt = filt or CandidateFilter()
    where, params = filt.where("c")
    with store.session() as tx:
        return int(tx.scalar(f"SELECT count(*) FROM candidates c WHERE {where}", params))


def clusters(store: Store, langs: Iterable[str] | None = None) -> list[int]:
    """Cluster numbers present (for filter widgets)."""
    filt = CandidateFilter(langs=tuple(langs or ()))
    where, params = filt.where("c")
    with store.session() as tx:
        return [r[0] for r in tx.all(
            f"SELECT DISTINCT cluster FROM candidates c WHERE cluster IS NOT NULL AND {where} ORDER BY 1", params)]


def reviewers(store: Store) -> list[str]:
    """Everyone with a decision in the log (for filter widgets)."""
    with store.session() as tx:
        return [r[0] for r in tx.all("SELECT DISTINCT reviewer FROM decisions ORDER BY 1")]


# ---------------------------------------------------------------------------------------------------------------------
# Bulk actions
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class BulkResult:
    action: str
    batch: str  # id shared by the request ids of this bulk action: `bulk:<batch>:<candidate id>`
    matched: int = 0  # candidates the filter selected and the action applies to
    recorded: int = 0  # decisions written
    failed: list[tuple[str, str]] = field(default_factory=list)  # (candidate id, error) left unchanged

    def __str__(self) -> str:
        msg = f"{self.action}: {self.recorded} of {self.matched} candidates recorded"
        if self.failed:
            msg += f", {len(self.failed)} refused (first: {self.failed[0][0]}: {self.failed[0][1]})"
        return msg


# Which review states each bulk action touches. bulk_accept never overrides a reviewer: only untouched (pending) pairs.
# send_to_review cancels the decisions before it (review.effective_decisions), so the pair goes back to the queue as
# pending: it applies to pairs with a final state or a conflict; pending ones are in the queue already, and in_review
# ones are left alone so that no reviewer's work in progress is wiped by a filter.
BULK_TARGETS = {
    "send_to_review": ("accepted", "edited", "rejected", "conflict"),
    "bulk_accept": ("pending",),
}


def bulk_send_to_review(store: Store, filt: CandidateFilter, user, *, chunk: int = 500, batch: str | None = None,
                        progress: Callable[[int, int], None] | None = None) -> BulkResult:
    """Send the decided or conflicting candidates the filter selects back to human review (one `send_to_review`
    decision each, under the curator's name): their earlier decisions stop counting and they are pending again."""
    return _bulk(store, filt, user, "send_to_review", extra=None, chunk=chunk, batch=batch, progress=progress)


def bulk_accept_above(store: Store, filt: CandidateFilter, min_score: float, user, *, chunk: int = 500,
                      batch: str | None = None, progress: Callable[[int, int], None] | None = None) -> BulkResult:
    """Accept every pending candidate the filter selects whose score is at least `min_score` (one `bulk_accept`
    decision each, under the curator's name). Candidates a human has decided on are never touched."""
    if min_score is None or not isinstance(min_score, (int, float)):
        raise InputError(f"min_score must be a number, got {min_score!r}")
    return _bulk(store, filt, user, "bulk_accept", extra=("c.score >= ?", [float(min_score)]), chunk=chunk,
                 batch=batch, progress=progress)


def bulk_preview(store: Store, filt: CandidateFilter, action: str, min_score: float | None = None) -> int:
    """How many candidates a bulk action would touch (for the confirm step)."""
    where, params = _bulk_where(filt, action, ("c.score >= ?", [float(min_score)]) if min_score is not None else None)
    with store.session() as tx:
        return int(tx.scalar(f"SELECT count(*) FROM candidates c WHERE {where}", params))


def _bulk_where(filt: CandidateFilter, action: str, extra) -> tuple[str, list]:
    where, params = filt.where("c")
    targets = BULK_TARGETS[action]
    where += f" AND c.review_status IN ({', '.join('?' for _ in targets)})"
    params = [*params, *targets]
    if extra:
        where += " AND " + extra[0]
        params += extra[1]
    return where, params


def _bulk(store, filt, user, action, *, extra, chunk, batch, progress) -> BulkResult:
    from . import auth, review

    user = auth.authorize(user, "curator", store)
    where, params = _bulk_where(filt, action, extra)
    batch = batch or uuid.uuid4().hex[:12]
    result = BulkResult(action=action, batch=batch)
    with store.session() as tx:
        result.matched = int(tx.scalar(f"SELECT count(*) FROM candidates c WHERE {where}", params))
    note = f"bulk {batch}: " + json.dumps(filt.as_dict(), ensure_ascii=False, sort_keys=True)
    if extra:
        note += f" score >= {extra[1][0]}"
    last = ""
    done = 0
    while True:
        # Keyset pagination by id: decisions change the status, so the next chunk starts after the last id seen.
        with store.session() as tx:
            ids = [r[0] for r in tx.all(
                f"SELECT c.id FROM candidates c WHERE {where} AND c.id > ? ORDER BY c.id LIMIT ?",
                [*params, last, int(chunk)])]
        if not ids:
            break
        for cid in ids:
            try:
                review.record_decision(store, cid, user, action, note=note, request_id=f"bulk:{batch}:{cid}")
                result.recorded += 1
            except Exception as exc:  # one refused candidate must not stop the rest; it is reported
                result.failed.append((cid, str(exc)))
            done += 1
        last = ids[-1]
        if progress:
            progress(done, result.matched)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Reviewers
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class ReviewerStats:
    per_day: pd.DataFrame  # reviewer, day, decisions (every logged action)
    reviewers: pd.DataFrame  # reviewer, decisions, accept, edit, reject, other, days, per_day, first, last,
    #                          pairs, pairwise_agreement
    alpha: float | None  # Krippendorff's alpha (nominal) over candidates with >= 2 verdicts; categories as the rule of
    #                      record: accept, reject, or an edit to one particular text
    alpha_keep: float | None  # the same with two categories: keep (accept or any edit) vs reject
    multi_reviewed: int  # candidates with verdicts from two or more reviewers


def reviewer_stats(store: Store, langs: Iterable[str] | None = None) -> ReviewerStats:
    """Throughput and agreement per reviewer, from the decision log.

    pairwise_agreement: over every pair of reviewers who both gave a verdict on one candidate, the share of pairs in
    which this reviewer agreed with the other (same verdict as review.derive_state counts it)."""
    filt = CandidateFilter(langs=tuple(langs or ()))
    where, params = filt.where("c")
    # Only join the candidates when a language filter needs them.
    source = "decisions d JOIN candidates c ON c.id = d.candidate_id" if filt.langs else "decisions d"
    with store.session() as tx:
        per_day = tx.df(
            "SELECT d.reviewer, CAST(d.created_at AS DATE) AS day, count(*) AS decisions "
            f"FROM {source} WHERE {where} GROUP BY ALL ORDER BY 1, 2", params)
        totals = tx.df(
            "SELECT d.reviewer, count(*) AS decisions, count(*) FILTER (action = 'accept') AS accept, "
            "count(*) FILTER (action = 'edit') AS edit, count(*) FILTER (action = 'reject') AS reject, "
            "count(*) FILTER (action NOT IN ('accept', 'edit', 'reject')) AS other, "
            "count(DISTINCT CAST(d.created_at AS DATE)) AS days, min(d.created_at) AS first, max(d.created_at) AS last "
            f"FROM {source} WHERE {where} GROUP BY 1 ORDER BY 1", params)
        verdicts = tx.all(
            f"WITH v AS ({MULTI_VERDICTS_SQL}) SELECT v.candidate_id, v.reviewer, v.verdict_key, v.keep FROM v "
            f"JOIN candidates c ON c.id = v.candidate_id WHERE {where} AND v.candidate_id IN ("
            "SELECT candidate_id FROM v GROUP BY 1 HAVING count(*) >= 2) ORDER BY 1, 2", params)
    by_cand: dict[str, dict[str, tuple[str, bool]]] = {}
    for cid, reviewer, key, keep in verdicts:
        by_cand.setdefault(cid, {})[reviewer] = (key, bool(keep))
    pairs: Counter = Counter()
    agree: Counter = Counter()
    for votes in by_cand.values():
        names = sorted(votes)
        for i, r in enumerate(names):
            for s in names[i + 1:]:
                same = votes[r][0] == votes[s][0]
                for who in (r, s):
                    pairs[who] += 1
                    agree[who] += same
    columns = ["reviewer", "decisions", "accept", "edit", "reject", "other", "days", "first", "last", "per_day",
               "pairs", "pairwise_agreement"]
    if not totals.empty:
        totals["per_day"] = totals["decisions"] / totals["days"].clip(lower=1)
        totals["pairs"] = [int(pairs.get(r, 0)) for r in totals["reviewer"]]
        totals["pairwise_agreement"] = [agree[r] / pairs[r] if pairs.get(r) else float("nan")
                                        for r in totals["reviewer"]]
        totals = totals[columns]
    else:
        totals = pd.DataFrame(columns=columns)
    keys: dict[str, int] = {}
    return ReviewerStats(
        per_day=per_day,
        reviewers=totals,
        alpha=_alpha(by_cand, lambda v: keys.setdefault(v[0], len(keys))),
        alpha_keep=_alpha(by_cand, lambda v: int(v[1])),
        multi_reviewed=len(by_cand),
    )


def _alpha(by_cand: dict[str, dict[str, tuple[str, bool]]], code: Callable) -> float | None:
    """Krippendorff's alpha (nominal) over the units with two or more values; None when it is undefined."""
    if not by_cand:
        return None
    import krippendorff

    names = sorted({r for votes in by_cand.values() for r in votes})
    index = {r: i for i, r in enumerate(names)}
    data = np.full((len(names), len(by_cand)), np.nan)
    values = set()
    for j, votes in enumerate(by_cand.values()):
        for r, v in votes.items():
            data[index[r], j] = code(v)
            values.add(code(v))
    if len(values) < 2:
        return 1.0 if values else None  # everyone agreed on one value: no disagreement at all (alpha is 0/0)
    try:
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        return None
    return None if np.isnan(value) else value


# ---------------------------------------------------------------------------------------------------------------------
# Conflicts and adjudication
# ---------------------------------------------------------------------------------------------------------------------
def conflicts(store: Store, langs: Iterable[str] | None = None, limit: int = 200) -> list[dict]:
    """Candidates whose reviewers disagreed (review_status 'conflict'), oldest first, each with its decisions:
    {id, lang, label, score, instruction, response, source_text, url, decisions: [{id, reviewer, action, instruction,
    response, reason, note, at}]} (instruction/response of a decision: what that reviewer left, else the candidate's)."""
    filt = CandidateFilter(langs=tuple(langs or ()), statuses=("conflict",))
    where, params = filt.where("c")
    with store.session() as tx:
        items = tx.dicts(
            "SELECT c.id, c.lang, c.label, c.score, c.instruction, c.response, d.text AS source_text, d.url "
            f"FROM candidates c LEFT JOIN documents d ON d.id = c.doc_id WHERE {where} ORDER BY c.created_at, c.id "
            "LIMIT ?", [*params, int(limit)])
        ids = [it["id"] for it in items]
        decs = tx.dicts(
            "SELECT id, candidate_id, reviewer, action, after, reason, note, created_at AS at FROM decisions "
            f"WHERE candidate_id IN ({', '.join('?' for _ in ids) or 'NULL'}) ORDER BY id", ids)
    by_id: dict[str, list] = {}
    for d in decs:
        after = _json(d.pop("after"))
        d["instruction"] = after.get("instruction") if isinstance(after, dict) else None
        d["response"] = after.get("response") if isinstance(after, dict) else None
        by_id.setdefault(d.pop("candidate_id"), []).append(d)
    for it in items:
        it["decisions"] = by_id.get(it["id"], [])
    return items


ADJUDICATE_VERDICTS = ("accept", "edit", "reject")


def adjudicate(store: Store, candidate_id: str, user, action: str, instruction: str | None = None,
               response: str | None = None, *, reason: str | None = None, note: str | None = None,
               request_id: str | None = None) -> int:
    """A curator's final word on a candidate, recorded as one 'adjudicate' decision (review.record_decision derives the
    final state from it and it outranks the reviewers' verdicts). `action`:

    * accept: the pair as generated (to keep a reviewer's edited text, pass it as an edit);
    * edit: with the final instruction and/or response (identical text counts as accept);
    * reject: with a `reason` from review.REJECT_REASONS (default 'other', with a note saying it was adjudicated).
    Returns the decision id."""
    from . import auth, review

    user = auth.authorize(user, "curator", store)
    if action not in ADJUDICATE_VERDICTS:
        raise InputError(f"unknown adjudication {action!r}", hint="use accept, edit or reject")
    if action == "accept":
        instruction = response = reason = None
    elif action == "edit":
        if instruction is None and response is None:
            raise InputError("an edit needs the final instruction or response")
        reason = None
    else:
        instruction = response = None
        reason = reason or "other"
        if reason == "other" and not (note or "").strip():
            note = f"rejected in adjudication by {user.name}"
    return review.record_decision(store, candidate_id, user, "adjudicate", instruction=instruction, response=response,
                                  reason=reason, note=note, request_id=request_id)


# ---------------------------------------------------------------------------------------------------------------------
# Chart data
# ---------------------------------------------------------------------------------------------------------------------
def _decision_group(status: str) -> str:
    return status if status in ("accepted", "edited", "rejected") else "undecided"


def score_histogram(store: Store, filt: CandidateFilter | None = None, bins: int = 20) -> pd.DataFrame:
    """Evaluator scores in `bins` equal bins over [0, 1], split by the human outcome (accepted, edited, rejected,
    undecided). Columns: bin (lower edge), decision, candidates."""
    filt = filt or CandidateFilter()
    where, params = filt.where("c")
    with store.session() as tx:
        rows = tx.all(
            f"SELECT least(floor(c.score * ?), ? - 1) AS b, c.review_status, count(*) FROM candidates c "
            f"WHERE c.score IS NOT NULL AND {where} GROUP BY ALL", [bins, bins, *params])
    counts: Counter = Counter()
    for b, status, n in rows:
        counts[(int(b), _decision_group(status))] += n
    out = [{"bin": round(b / bins, 6), "decision": g, "candidates": n} for (b, g), n in sorted(counts.items())]
    return pd.DataFrame(out, columns=["bin", "decision", "candidates"])


def progress(store: Store, langs: Iterable[str] | None = None) -> pd.DataFrame:
    """Decisions per day by action, with the running total. Columns: day, action, decisions, cumulative."""
    filt = CandidateFilter(langs=tuple(langs or ()))
    where, params = filt.where("c")
    with store.session() as tx:
        df = tx.df(
            "SELECT CAST(d.created_at AS DATE) AS day, d.action, count(*) AS decisions FROM decisions d "
            f"JOIN candidates c ON c.id = d.candidate_id WHERE {where} GROUP BY ALL ORDER BY 1, 2", params)
    if df.empty:
        return pd.DataFrame(columns=["day", "action", "decisions", "cumulative"])
    df["cumulative"] = df.groupby("action")["decisions"].cumsum()
    return df


EMPTY_MAP_MESSAGE = ("No instruction embeddings in the store yet: they are written by the diversification stage "
                     "(`xinstruct diversify`).")


def embedding_map(store: Store, filt: CandidateFilter | None = None, limit: int = 5000,
                  model: str | None = None) -> pd.DataFrame:
    """A 2-D map of instruction embeddings (PCA) for at most `limit` candidates, coloured by review status.
    Columns: id, x, y, review_status, lang, instruction. Empty frame when no embeddings are stored (see
    EMPTY_MAP_MESSAGE)."""
    filt = filt or CandidateFilter()
    where, params = filt.where("c")
    cols = ["id", "x", "y", "review_status", "lang", "instruction"]
    with store.session() as tx:
        if model is None:
            model = tx.scalar("SELECT model FROM embeddings GROUP BY model ORDER BY count(*) DESC, model LIMIT 1")
        if model is None:
            return pd.DataFrame(columns=cols)
        # A deterministic sample spread over the store: order by a hash of the id.
        rows = tx.all(
            "SELECT c.id, c.review_status, c.lang, coalesce(c.final_instruction, c.instruction), e.vector "
            f"FROM embeddings e JOIN candidates c ON c.id = e.candidate_id WHERE e.model = ? AND {where} "
            "ORDER BY hash(c.id), c.id LIMIT ?", [model, *params, int(limit)])
    if not rows:
        return pd.DataFrame(columns=cols)
    vectors = np.asarray([r[4] for r in rows], dtype=np.float32)
    if len(rows) >= 2 and vectors.shape[1] >= 2:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=0).fit_transform(vectors)
    else:
        xy = np.zeros((len(rows), 2), dtype=np.float32)
    return pd.DataFrame({
        "id": [r[0] for r in rows], "x": xy[:, 0], "y": xy[:, 1], "review_status": [r[1] for r in rows],
        "lang": [r[2] for r in rows], "instruction": [r[3] for r in rows],
    })


# Words that open an instruction without being its verb ("Please write", "Can you explain", "I want you to list").
_LEAD = {"please", "kindly", "can", "could", "would", "will", "you", "i", "we", "want", "need", "to", "now", "also",
         "then", "just", "briefly", "quickly", "let's", "lets", "let", "us", "me", "help", "try", "and", "so"}
# Words between the verb and its object that are not the object ("write a short summary", "list the main points").
_SKIP = {"a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "all", "both", "few",
         "several", "many", "more", "most", "other", "another", "such", "me", "us", "him", "her", "them", "it", "my",
         "your", "our", "his", "its", "their", "one", "two", "three", "four", "five", "short", "brief", "long",
         "detailed", "concise", "simple", "new", "main", "key", "following", "given", "above", "below", "good", "best",
         "great", "important", "different", "various", "possible", "interesting", "informative", "engaging", "well",
         "clear", "comprehensive", "quick", "small", "big", "large", "of", "for", "about", "on", "in", "to", "with",
         "from", "by", "at", "as", "into", "up", "out", "and", "or", "what", "how", "why", "who", "which", "when",
         "where", "whether", "if", "is", "are", "was", "were", "be", "been", "do", "does", "did", "there", "some",
         "top", "few", "paragraph-long", "step-by-step", "i", "you", "we", "they", "he", "she", "not", "no", "very",
         "most", "first", "second", "last", "next", "own", "specific", "recent", "latest", "current", "overall"}
_WORD = re.compile(r"[a-z][a-z'\-]*")


def verb_object(instruction: str | None) -> tuple[str, str | None] | None:
    """(verb, object) of an English instruction by a cheap rule: the first word after polite openers is the verb, the
    next content word is its object. "Please write a short summary of ..." -> ("write", "summary"); questions give
    (question word, object): "What are the benefits of tea?" -> ("what", "benefits"). None when there are no words.
    diversify.cluster_label names clusters with it."""
    if not instruction:
        return None
    words = _WORD.findall(instruction.lower())
    i = 0
    while i < len(words) - 1 and words[i] in _LEAD:
        i += 1
    if i >= len(words):
        return None
    verb = words[i]
    if verb in _LEAD and i == len(words) - 1:
        return None
    if verb == "summarise":
        verb = "summarize"
    obj = next((w for w in words[i + 1:] if w not in _SKIP and len(w) > 1), None)
    return verb, obj


def top_topics(store: Store, filt: CandidateFilter | None = None, n: int = 20, max_rows: int = 200_000) -> pd.DataFrame:
    """The most frequent (verb, object) pairs of the instructions a filter selects (at most `max_rows` read).
    Columns: verb, object, candidates, share."""
    filt = filt or CandidateFilter()
    where, params = filt.where("c")
    with store.session() as tx:
        texts = [r[0] for r in tx.all(
            f"SELECT coalesce(c.final_instruction, c.instruction) FROM candidates c WHERE {where} "
            "AND c.instruction IS NOT NULL LIMIT ?", [*params, int(max_rows)])]
    counts: Counter = Counter(vo for vo in map(verb_object, texts) if vo)
    total = sum(counts.values())
    rows = [{"verb": v, "object": o or "", "candidates": k, "share": k / total} for (v, o), k in counts.most_common(n)]
    return pd.DataFrame(rows, columns=["verb", "object", "candidates", "share"])


def _json(value):
    if value is None or isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None
