"""Queries for curation: the candidate filter, the reviewers' verdicts in force (the review rule's SQL form), overview
counts, search, bulk selection, reviewer statistics, conflicts and chart data.

`xinstruct.curate` assembles these into what the pages and the CLI show; everything here takes a `Store` and returns
plain rows, small records or a pandas frame of a fixed shape. Every value that comes from a user is a `?` parameter;
the only words written into SQL text are the vocabulary's constants (`xinstruct.vocab`) and column names chosen here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np

from .. import vocab as V
from ..errors import InputError
from ..langs import LANGS
from .engine import Store

AGREEMENT = ("any", "agree", "disagree")


def sql_list(values: Iterable[str]) -> str:
    """A parenthesised SQL list of vocabulary constants, e.g. ('accept', 'edit', 'reject'). Only for the project's own
    words (checked: letters and '_'), never for user values, which are always parameters."""
    values = list(values)
    for v in values:
        if not v.replace("_", "").isalpha():
            raise ValueError(f"not a vocabulary word: {v!r}")
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# ---------------------------------------------------------------------------------------------------------------------
# The review rule's SQL form: each reviewer's verdict in force
# ---------------------------------------------------------------------------------------------------------------------
# As review.derive_state counts them: per (candidate, reviewer) the latest accept / edit / reject that is not undone (an
# undo names the decision it takes back in after.undoes) and not before the candidate's latest send_to_review in force.
# Columns: candidate_id, reviewer, verdict (accept | edit | reject), verdict_key (the action, for an edit with a hash of
# the edited text: equal keys = agreement), keep (accept or edit), decided_at.
# tests/test_verdicts.py replays random decision logs through this and through review.derive_state.
_VERDICTS = sql_list(V.VERDICTS)
_UNDONE = (f"SELECT TRY_CAST(json_extract_string(after, '$.undoes') AS BIGINT) FROM decisions WHERE action = '{V.UNDO}' "
           "AND after IS NOT NULL AND json_extract_string(after, '$.undoes') IS NOT NULL")
# Candidates on which two or more people ever gave a verdict: agreement needs two, and restricting the window to them
# keeps it small when most items have one review.
_MULTI = (f"SELECT candidate_id FROM decisions WHERE action IN {_VERDICTS} GROUP BY 1 "
          "HAVING count(DISTINCT reviewer) >= 2")


def verdicts_sql(*, multi_only: bool) -> str:
    """The SELECT of the verdicts in force (columns above); `multi_only`: only candidates on which two or more
    reviewers ever gave a verdict. Composed from named parts: no text of it is ever rewritten afterwards."""
    only_multi = f"AND d.candidate_id IN ({_MULTI})" if multi_only else ""
    return f"""
    SELECT candidate_id, reviewer, action AS verdict, verdict_key, action <> '{V.REJECT}' AS keep,
           created_at AS decided_at
    FROM (
        SELECT d.candidate_id, d.reviewer, d.action, d.created_at,
               CASE WHEN d.action = '{V.EDIT}' THEN '{V.EDIT}:' || md5(
                   coalesce(json_extract_string(d.after, '$.instruction'), '') || chr(1) ||
                   coalesce(json_extract_string(d.after, '$.response'), '')) ELSE d.action END AS verdict_key,
               row_number() OVER (PARTITION BY d.candidate_id, d.reviewer ORDER BY d.id DESC) AS rn
        FROM decisions d
        LEFT JOIN (
            SELECT candidate_id, max(id) AS rid FROM decisions
            WHERE action = '{V.SEND_TO_REVIEW}' AND id NOT IN ({_UNDONE}) GROUP BY candidate_id
        ) r ON r.candidate_id = d.candidate_id
        WHERE d.action IN {_VERDICTS} AND d.id > coalesce(r.rid, -1) AND d.id NOT IN ({_UNDONE})
          {only_multi}
    ) WHERE rn = 1
"""


VERDICTS_SQL = verdicts_sql(multi_only=False)
MULTI_VERDICTS_SQL = verdicts_sql(multi_only=True)


@dataclass(frozen=True)
class Verdict:
    candidate_id: str
    reviewer: str
    verdict: str  # accept | edit | reject
    verdict_key: str  # equal keys = the same verdict (for edits: the same edited text)
    keep: bool
    decided_at: datetime


def verdicts_in_force(store: Store, *, multi_only: bool = False,
                      candidate_ids: Sequence[str] | None = None) -> list[Verdict]:
    """Each reviewer's verdict in force, ordered by candidate and reviewer (optionally of some candidates only)."""
    sql, params = f"SELECT * FROM ({verdicts_sql(multi_only=multi_only)})", []
    if candidate_ids is not None:
        sql += f" WHERE candidate_id IN ({', '.join('?' for _ in candidate_ids) or 'NULL'})"
        params = list(candidate_ids)
    with store.session() as tx:
        rows = tx.all(sql + " ORDER BY candidate_id, reviewer", params)
    return [Verdict(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]


# ---------------------------------------------------------------------------------------------------------------------
# The filter
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
    ids: tuple[str, ...] = ()  # only these candidate ids (a selection made elsewhere, e.g. a round's data)

    def __post_init__(self) -> None:
        # Accept lists from widgets and the CLI; store tuples so the filter is hashable and cacheable.
        for name in ("langs", "labels", "clusters", "statuses", "ids"):
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
        bad = [x for x in self.labels if x not in (*V.LABELS, V.UNLABELED)]
        if bad:
            raise InputError(f"unknown label(s) {', '.join(map(str, bad))}",
                             hint=f"use {' '.join(V.LABELS)} {V.UNLABELED}")
        bad = [x for x in self.statuses if x not in V.STATUSES]
        if bad:
            raise InputError(f"unknown review status(es) {', '.join(map(str, bad))}",
                             hint=f"use {' '.join(V.STATUSES)}")
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
            named = [x for x in self.labels if x != V.UNLABELED]
            ors = []
            if named:
                ors.append(f"{a}.label IN ({', '.join('?' for _ in named)})")
                params.extend(named)
            if V.UNLABELED in self.labels:
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
        if self.ids:
            parts.append(f"{a}.id = ANY(?)")
            params.append([str(x) for x in self.ids])
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


Filters = CandidateFilter | Sequence[CandidateFilter | None] | None


def where_all(filters: Filters, alias: str = "c") -> tuple[str, list[Any]]:
    """The conditions of several filters AND-ed (None entries are skipped; no filter selects everything)."""
    if filters is None or isinstance(filters, CandidateFilter):
        filters = [filters]
    parts, params = [], []
    for f in filters:
        if f is None:
            continue
        where, p = f.where(alias)
        parts.append(f"({where})")
        params += p
    return (" AND ".join(parts) or "TRUE"), params


# ---------------------------------------------------------------------------------------------------------------------
# Overview counts and review rates
# ---------------------------------------------------------------------------------------------------------------------
RATE_GROUPS = {"lang": "lang", "round": "round_id"}


def _lang_clause(langs: Sequence[str] | None) -> tuple[str, list]:
    return (f"AND lang IN ({', '.join('?' * len(langs))})", list(langs)) if langs else ("", [])


def document_counts(store: Store) -> list[tuple[str, str, str, int]]:
    """(lang, status, drop reason or 'unknown', documents) of every language with documents."""
    with store.session() as tx:
        return tx.all("SELECT lang, status, coalesce(drop_reason, 'unknown'), count(*) FROM documents "
                      "WHERE lang IS NOT NULL GROUP BY ALL")


def label_counts(store: Store) -> list[tuple[str, str, int]]:
    """(lang, evaluator label or vocab.UNLABELED, candidates)."""
    with store.session() as tx:
        return tx.all("SELECT lang, coalesce(label, ?), count(*) FROM candidates GROUP BY ALL", [V.UNLABELED])


def status_counts(store: Store) -> list[tuple[str, str, int]]:
    """(lang, review status, candidates)."""
    with store.session() as tx:
        return tx.all("SELECT lang, review_status, count(*) FROM candidates GROUP BY ALL")


def decided_counts(store: Store, by: Sequence[str], langs: Sequence[str] | None = None,
                   edit_sample: int = V.EDIT_DISTANCE_SAMPLE) -> list[tuple]:
    """Per group of `by` (keys of RATE_GROUPS): (*group values, accepted, edited, rejected, mean edit distance).

    The edit distance is the character Levenshtein distance between the generated instruction and the final one, mean
    over at most `edit_sample` edited pairs of the group (a fixed sample by id hash, so that it stays cheap on a large
    store); None without edits. Only groups with a decided candidate appear."""
    unknown = [g for g in by if g not in RATE_GROUPS]
    if unknown or not by:
        raise InputError(f"cannot group review rates by {', '.join(unknown) or 'nothing'}",
                         hint=f"use {', '.join(RATE_GROUPS)}")
    cols = ", ".join(RATE_GROUPS[g] for g in by)
    lang_sql, lang_params = _lang_clause(langs)
    with store.session() as tx:
        counts = tx.all(
            f"SELECT {cols}, count(*) FILTER (review_status = '{V.ACCEPTED}'), "
            f"count(*) FILTER (review_status = '{V.EDITED}'), count(*) FILTER (review_status = '{V.REJECTED}') "
            f"FROM candidates WHERE review_status IN {sql_list(V.FINAL_STATUSES)} {lang_sql} GROUP BY ALL",
            lang_params)
        distances = tx.all(
            f"SELECT {cols}, avg(levenshtein(instruction, final_instruction)) FROM ("
            f"  SELECT {cols}, instruction, final_instruction,"
            f"         row_number() OVER (PARTITION BY {cols} ORDER BY hash(id), id) AS rn FROM candidates"
            f"  WHERE review_status = '{V.EDITED}' AND final_instruction IS NOT NULL AND instruction IS NOT NULL "
            f"  {lang_sql}) WHERE rn <= ? GROUP BY ALL", [*lang_params, int(edit_sample)])
    n = len(by)
    dist = {tuple(r[:n]): float(r[n]) for r in distances}
    return [(*r, dist.get(tuple(r[:n]))) for r in counts]


# ---------------------------------------------------------------------------------------------------------------------
# Search, counts, widgets
# ---------------------------------------------------------------------------------------------------------------------
def search_frame(store: Store, filt: CandidateFilter, limit: int, offset: int):
    """The candidates a filter selects, best score first (then id), as a frame: id, lang, label, score, cluster,
    review_status, selected, instruction and response as finally edited (else current; the response cut to 300
    characters), reviews (verdicts in force), decisions (entries in the log)."""
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
    return df


def count(store: Store, filters: Filters = None) -> int:
    """How many candidates every given filter selects."""
    where, params = where_all(filters)
    with store.session() as tx:
        return int(tx.scalar(f"SELECT count(*) FROM candidates c WHERE {where}", params))


def candidate_ids(store: Store, filters: Filters, *, after: str = "", limit: int = 500) -> list[str]:
    """Ids of the candidates the filters select, in id order, after `after` (keyset pagination: a caller that changes
    what the filter selects while it walks the list still sees every candidate once)."""
    where, params = where_all(filters)
    with store.session() as tx:
        return [r[0] for r in tx.all(f"SELECT c.id FROM candidates c WHERE {where} AND c.id > ? ORDER BY c.id LIMIT ?",
                                     [*params, after, int(limit)])]


def clusters(store: Store, filt: CandidateFilter) -> list[int]:
    """Cluster numbers present among the candidates the filter selects."""
    where, params = filt.where("c")
    with store.session() as tx:
        return [r[0] for r in tx.all(
            f"SELECT DISTINCT cluster FROM candidates c WHERE cluster IS NOT NULL AND {where} ORDER BY 1", params)]


def reviewers(store: Store) -> list[str]:
    """Everyone with a decision in the log."""
    with store.session() as tx:
        return [r[0] for r in tx.all("SELECT DISTINCT reviewer FROM decisions ORDER BY 1")]


# ---------------------------------------------------------------------------------------------------------------------
# Reviewer statistics
# ---------------------------------------------------------------------------------------------------------------------
def _decision_source(filt: CandidateFilter) -> str:
    # Only join the candidates when a language filter needs them.
    return "decisions d JOIN candidates c ON c.id = d.candidate_id" if filt.langs else "decisions d"


def decisions_per_day(store: Store, filt: CandidateFilter):
    """Frame: reviewer, day, decisions (every logged action), ordered by reviewer and day."""
    where, params = filt.where("c")
    with store.session() as tx:
        return tx.df("SELECT d.reviewer, CAST(d.created_at AS DATE) AS day, count(*) AS decisions "
                     f"FROM {_decision_source(filt)} WHERE {where} GROUP BY ALL ORDER BY 1, 2", params)


def decision_totals(store: Store, filt: CandidateFilter):
    """Frame per reviewer: decisions, accept, edit, reject, other, days, first, last."""
    where, params = filt.where("c")
    with store.session() as tx:
        return tx.df(
            "SELECT d.reviewer, count(*) AS decisions, "
            f"count(*) FILTER (action = '{V.ACCEPT}') AS accept, count(*) FILTER (action = '{V.EDIT}') AS edit, "
            f"count(*) FILTER (action = '{V.REJECT}') AS reject, "
            f"count(*) FILTER (action NOT IN {_VERDICTS}) AS other, "
            "count(DISTINCT CAST(d.created_at AS DATE)) AS days, min(d.created_at) AS first, max(d.created_at) AS last "
            f"FROM {_decision_source(filt)} WHERE {where} GROUP BY 1 ORDER BY 1", params)


def multi_verdicts(store: Store, filt: CandidateFilter) -> list[tuple[str, str, str, bool]]:
    """(candidate_id, reviewer, verdict_key, keep) of the candidates the filter selects with two or more verdicts in
    force, ordered by candidate and reviewer."""
    where, params = filt.where("c")
    with store.session() as tx:
        return tx.all(
            f"WITH v AS ({MULTI_VERDICTS_SQL}) SELECT v.candidate_id, v.reviewer, v.verdict_key, v.keep FROM v "
            f"JOIN candidates c ON c.id = v.candidate_id WHERE {where} AND v.candidate_id IN ("
            "SELECT candidate_id FROM v GROUP BY 1 HAVING count(*) >= 2) ORDER BY 1, 2", params)


# ---------------------------------------------------------------------------------------------------------------------
# Conflicts
# ---------------------------------------------------------------------------------------------------------------------
def candidates_with_source(store: Store, filt: CandidateFilter, limit: int) -> list[dict]:
    """{id, lang, label, score, instruction, response, source_text, url} of the candidates the filter selects, oldest
    first."""
    where, params = filt.where("c")
    with store.session() as tx:
        return tx.dicts(
            "SELECT c.id, c.lang, c.label, c.score, c.instruction, c.response, d.text AS source_text, d.url "
            f"FROM candidates c LEFT JOIN documents d ON d.id = c.doc_id WHERE {where} ORDER BY c.created_at, c.id "
            "LIMIT ?", [*params, int(limit)])


def decision_log(store: Store, candidate_ids: Sequence[str]) -> list[dict]:
    """The decisions on these candidates in log order: {id, candidate_id, reviewer, action, after, reason, note, at}."""
    ids = list(candidate_ids)
    with store.session() as tx:
        return tx.dicts(
            "SELECT id, candidate_id, reviewer, action, after, reason, note, created_at AS at FROM decisions "
            f"WHERE candidate_id IN ({', '.join('?' for _ in ids) or 'NULL'}) ORDER BY id", ids)


# ---------------------------------------------------------------------------------------------------------------------
# Chart data
# ---------------------------------------------------------------------------------------------------------------------
def score_bins(store: Store, filt: CandidateFilter, bins: int) -> list[tuple[int, str, int]]:
    """(bin number in [0, bins), review status, candidates) of the scored candidates the filter selects."""
    where, params = filt.where("c")
    with store.session() as tx:
        return tx.all(
            f"SELECT least(floor(c.score * ?), ? - 1) AS b, c.review_status, count(*) FROM candidates c "
            f"WHERE c.score IS NOT NULL AND {where} GROUP BY ALL", [bins, bins, *params])


def actions_per_day(store: Store, filt: CandidateFilter):
    """Frame: day, action, decisions, over the decisions on the candidates the filter selects."""
    where, params = filt.where("c")
    with store.session() as tx:
        return tx.df(
            "SELECT CAST(d.created_at AS DATE) AS day, d.action, count(*) AS decisions FROM decisions d "
            f"JOIN candidates c ON c.id = d.candidate_id WHERE {where} GROUP BY ALL ORDER BY 1, 2", params)


def main_embedding_model(store: Store) -> str | None:
    """The embedding model with the most stored vectors (None without embeddings)."""
    with store.session() as tx:
        return tx.scalar("SELECT model FROM embeddings GROUP BY model ORDER BY count(*) DESC, model LIMIT 1")


def embedded_candidates(store: Store, filt: CandidateFilter, model: str, limit: int) -> list[tuple]:
    """(id, review_status, lang, instruction as finally edited, vector) of at most `limit` candidates the filter
    selects with an embedding by `model`: a deterministic sample spread over the store (ordered by a hash of the id)."""
    where, params = filt.where("c")
    with store.session() as tx:
        return tx.all(
            "SELECT c.id, c.review_status, c.lang, coalesce(c.final_instruction, c.instruction), e.vector "
            f"FROM embeddings e JOIN candidates c ON c.id = e.candidate_id WHERE e.model = ? AND {where} "
            "ORDER BY hash(c.id), c.id LIMIT ?", [model, *params, int(limit)])


def instructions(store: Store, filt: CandidateFilter, limit: int) -> list[str]:
    """The instructions (as finally edited) of at most `limit` candidates the filter selects."""
    where, params = filt.where("c")
    with store.session() as tx:
        return [r[0] for r in tx.all(
            f"SELECT coalesce(c.final_instruction, c.instruction) FROM candidates c WHERE {where} "
            "AND c.instruction IS NOT NULL LIMIT ?", [*params, int(limit)])]


# ---------------------------------------------------------------------------------------------------------------------
# Reviewed candidates (human labels for quality, calibration and the round report)
# ---------------------------------------------------------------------------------------------------------------------
def reviewed_labels(store: Store, lang: str | None = None) -> list[tuple]:
    """Decided candidates, one row each in id order: (id, lang, the instruction the reviewer saw (the latest
    generated or refined version), response, review_status, final_instruction, score when labelled)."""
    with store.session() as tx:
        rows = tx.all(
            "SELECT c.id, c.lang, coalesce(v.instruction, c.instruction), c.response, c.review_status, "
            "c.final_instruction, c.score FROM candidates c LEFT JOIN candidate_versions v ON v.candidate_id = c.id "
            "AND v.version = c.version AND v.stage IN ('generate', 'refine') "
            f"WHERE c.review_status IN {sql_list(V.FINAL_STATUSES)} " + ("AND c.lang = ? " if lang else "")
            + "ORDER BY c.id", [lang] if lang else [])
    seen, out = set(), []
    for r in rows:
        if r[0] not in seen:
            seen.add(r[0])
            out.append(r)
    return out


def reviewed_candidates(store: Store, since_decision: int = 0) -> list[dict]:
    """Decided candidates with a decision after `since_decision`, in id order, with what calibration and feedback
    need: id, lang, round_id, review_status, p_good, gain (the likelihood gain),
    ll_text, score, features, instruction, response, final_instruction, final_response, text (the document)."""
    with store.session() as tx:
        return tx.dicts(
            "SELECT c.id, c.lang, c.round_id, c.review_status, c.p_good, c.gain, c.ll_text, c.score, "
            "c.features, c.instruction, c.response, c.final_instruction, c.final_response, d.text "
            "FROM candidates c JOIN documents d ON d.id = c.doc_id "
            f"WHERE c.review_status IN {sql_list(V.FINAL_STATUSES)} "
            "AND EXISTS (SELECT 1 FROM decisions x WHERE x.candidate_id = c.id AND x.id > ?) ORDER BY c.id",
            [int(since_decision)])


def reviewed_by_round(store: Store) -> list[dict]:
    """Decided candidates with their round's versions: round_id, lang, review_status, score, model_version,
    generator, evaluator; ordered by round, language, id."""
    with store.session() as tx:
        return tx.dicts(
            "SELECT c.round_id, c.lang, c.review_status, c.score, c.model_version, "
            "r.generator, r.evaluator FROM candidates c LEFT JOIN rounds r ON r.id = c.round_id "
            f"WHERE c.review_status IN {sql_list(V.FINAL_STATUSES)} ORDER BY c.round_id, c.lang, c.id")
