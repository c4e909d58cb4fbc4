"""Curation: look at the whole store, filter candidates, act on many at once, settle disagreements.

No Streamlit here: the curator pages and the CLI call these functions and render what they return.

* `overview` — per language: documents kept / dropped by reason, candidates by label, review status, acceptance and edit
  rates, mean edit distance of the instruction.
* `CandidateFilter` — the one filter of the explore and export pages (defined with its SQL in `store.curation`;
  every user value is a `?` parameter, never SQL text).
* `search`, `count` — the rows a filter selects.
* `bulk_send_to_review`, `bulk_accept_above` — one logged decision per affected candidate, written through
  `review.record_decision` under the curator's name, in chunks.
* `reviewer_stats` — throughput per reviewer per day, agreement (Krippendorff's alpha, pairwise agreement rates).
* `conflicts`, `adjudicate` — items whose reviewers disagreed, and the curator's final word.
* Chart data: `score_histogram`, `progress`, `embedding_map`, `top_topics` (with `verb_object`).

Who reviewed what is read from the decision log with the rule of record of `review.derive_state`: a reviewer's
*verdict* on a candidate is their latest accept / edit / reject that is still in force (not taken back by an `undo`, not
before a `send_to_review`). Two verdicts agree when they are the same action and, for edits, the same edited text;
anything else is what makes a candidate a 'conflict'. The SQL form of that rule is `store.curation.verdicts_sql`;
tests/test_verdicts.py replays random decision logs through both.

All SQL lives in `xinstruct.store.curation`; labels, statuses and the rates' definition in `xinstruct.vocab`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import vocab as V
from .errors import InputError
from .langs import LANGS
from .store import Store
from .store import curation as q
from .store.curation import AGREEMENT, CandidateFilter  # noqa: F401  (the filter of the pages and the CLI)
from .vocab import KEPT, LABELS, RATES_CAPTION, STATUSES, UNLABELED, rates  # noqa: F401  (re-exported)


# ---------------------------------------------------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------------------------------------------------
EDIT_DISTANCE_SAMPLE = V.EDIT_DISTANCE_SAMPLE


def review_rates(store: Store, by: Sequence[str] = ("lang",), langs: Iterable[str] | None = None) -> dict[tuple, dict]:
    """Review rates per group (`by`: "lang" and/or "round"), keyed by the tuple of group values.

    Each value: accepted, edited, rejected, decided, acceptance_rate, edit_rate (`vocab.rates`, the one definition)
    and mean_edit_distance: the mean character Levenshtein distance between the generated instruction and the final
    one over edited pairs (at most EDIT_DISTANCE_SAMPLE per group, a fixed sample by id hash, so that it stays cheap on
    a large store), None without edits. Only groups with a decided candidate appear."""
    n = len(by)
    out = {}
    for r in q.decided_counts(store, by, list(langs) if langs is not None else None, EDIT_DISTANCE_SAMPLE):
        key, (accepted, edited, rejected, distance) = tuple(r[:n]), r[n:]
        out[key] = {"accepted": accepted, "edited": edited, "rejected": rejected, **rates(accepted, edited, rejected),
                    "mean_edit_distance": distance}
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
    docs, labels, status = q.document_counts(store), q.label_counts(store), q.status_counts(store)
    by_lang = review_rates(store, ("lang",), want)
    present = {r[0] for r in docs} | {r[0] for r in labels}
    codes = [c for c in LANGS if (c in want if want else c in present)]
    codes += sorted(c for c in present if c not in LANGS and not want)  # codes outside our ten, if any
    rows = []
    for code in codes:
        dropped = {reason: n for lang, st, reason, n in docs if lang == code and st == V.DOC_DROPPED}
        kept = sum(n for lang, st, _, n in docs if lang == code and st == V.DOC_KEPT)
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
    df = q.search_frame(store, filt or CandidateFilter(), limit, offset)
    return df[list(SEARCH_COLUMNS)]


def count(store: Store, filt: CandidateFilter | None = None) -> int:
    return q.count(store, filt)


def clusters(store: Store, langs: Iterable[str] | None = None) -> list[int]:
    """Cluster numbers present (for filter widgets)."""
    return q.clusters(store, CandidateFilter(langs=tuple(langs or ())))


def reviewers(store: Store) -> list[str]:
    """Everyone with a decision in the log (for filter widgets)."""
    return q.reviewers(store)


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
    V.SEND_TO_REVIEW: (*V.FINAL_STATUSES, V.CONFLICT),
    V.BULK_ACCEPT: (V.PENDING,),
}


def bulk_send_to_review(store: Store, filt: CandidateFilter, user, *, chunk: int = 500, batch: str | None = None,
                        progress: Callable[[int, int], None] | None = None) -> BulkResult:
    """Send the decided or conflicting candidates the filter selects back to human review (one `send_to_review`
    decision each, under the curator's name): their earlier decisions stop counting and they are pending again."""
    return _bulk(store, filt, user, V.SEND_TO_REVIEW, min_score=None, chunk=chunk, batch=batch, progress=progress)


def bulk_accept_above(store: Store, filt: CandidateFilter, min_score: float, user, *, chunk: int = 500,
                      batch: str | None = None, progress: Callable[[int, int], None] | None = None) -> BulkResult:
    """Accept every pending candidate the filter selects whose score is at least `min_score` (one `bulk_accept`
    decision each, under the curator's name). Candidates a human has decided on are never touched."""
    if min_score is None or not isinstance(min_score, (int, float)):
        raise InputError(f"min_score must be a number, got {min_score!r}")
    return _bulk(store, filt, user, V.BULK_ACCEPT, min_score=float(min_score), chunk=chunk, batch=batch,
                 progress=progress)


def bulk_preview(store: Store, filt: CandidateFilter, action: str, min_score: float | None = None) -> int:
    """How many candidates a bulk action would touch (for the confirm step)."""
    return q.count(store, _bulk_filters(filt, action, min_score))


def _bulk_filters(filt: CandidateFilter, action: str, min_score: float | None) -> list[CandidateFilter]:
    """The curator's filter AND the states the action touches AND (bulk accept) the score threshold."""
    return [filt, CandidateFilter(statuses=BULK_TARGETS[action],
                                  min_score=float(min_score) if min_score is not None else None)]


def _bulk(store, filt, user, action, *, min_score, chunk, batch, progress) -> BulkResult:
    from . import auth, review

    user = auth.authorize(user, "curator", store)
    filters = _bulk_filters(filt, action, min_score)
    batch = batch or uuid.uuid4().hex[:12]
    result = BulkResult(action=action, batch=batch)
    result.matched = q.count(store, filters)
    note = f"bulk {batch}: " + json.dumps(filt.as_dict(), ensure_ascii=False, sort_keys=True)
    if min_score is not None:
        note += f" score >= {min_score}"
    last = ""
    done = 0
    while True:
        # Keyset pagination by id: decisions change the status, so the next chunk starts after the last id seen.
        ids = q.candidate_ids(store, filters, after=last, limit=chunk)
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
    per_day, totals = q.decisions_per_day(store, filt), q.decision_totals(store, filt)
    verdicts = q.multi_verdicts(store, filt)
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
    filt = CandidateFilter(langs=tuple(langs or ()), statuses=(V.CONFLICT,))
    items = q.candidates_with_source(store, filt, limit)
    decs = q.decision_log(store, [it["id"] for it in items])
    by_id: dict[str, list] = {}
    for d in decs:
        after = _json(d.pop("after"))
        d["instruction"] = after.get("instruction") if isinstance(after, dict) else None
        d["response"] = after.get("response") if isinstance(after, dict) else None
        by_id.setdefault(d.pop("candidate_id"), []).append(d)
    for it in items:
        it["decisions"] = by_id.get(it["id"], [])
    return items


ADJUDICATE_VERDICTS = V.VERDICTS


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
    if action == V.ACCEPT:
        instruction = response = reason = None
    elif action == V.EDIT:
        if instruction is None and response is None:
            raise InputError("an edit needs the final instruction or response")
        reason = None
    else:
        instruction = response = None
        reason = reason or V.OTHER_REASON
        if reason == V.OTHER_REASON and not (note or "").strip():
            note = f"rejected in adjudication by {user.name}"
    return review.record_decision(store, candidate_id, user, V.ADJUDICATE, instruction=instruction, response=response,
                                  reason=reason, note=note, request_id=request_id)


# ---------------------------------------------------------------------------------------------------------------------
# Chart data
# ---------------------------------------------------------------------------------------------------------------------
def score_histogram(store: Store, filt: CandidateFilter | None = None, bins: int = 20) -> pd.DataFrame:
    """Evaluator scores in `bins` equal bins over [0, 1], split by the human outcome (accepted, edited, rejected,
    undecided). Columns: bin (lower edge), decision, candidates."""
    rows = q.score_bins(store, filt or CandidateFilter(), bins)
    counts: Counter = Counter()
    for b, status, n in rows:
        counts[(int(b), V.decision_group(status))] += n
    out = [{"bin": round(b / bins, 6), "decision": g, "candidates": n} for (b, g), n in sorted(counts.items())]
    return pd.DataFrame(out, columns=["bin", "decision", "candidates"])


def progress(store: Store, langs: Iterable[str] | None = None) -> pd.DataFrame:
    """Decisions per day by action, with the running total. Columns: day, action, decisions, cumulative."""
    df = q.actions_per_day(store, CandidateFilter(langs=tuple(langs or ())))
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
    cols = ["id", "x", "y", "review_status", "lang", "instruction"]
    model = model if model is not None else q.main_embedding_model(store)
    if model is None:
        return pd.DataFrame(columns=cols)
    rows = q.embedded_candidates(store, filt or CandidateFilter(), model, limit)
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
    texts = q.instructions(store, filt or CandidateFilter(), max_rows)
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
