"""Candidates: the (English instruction, native text) pairs the stages write, their version history, their labels and
measurements, their instruction embeddings and clusters.

Who writes what: generate adds candidates and their version 1 (`add_generated`); refine labels them (`save_labels`) and
rewrites flawed instructions (`save_rewrites`), each change also a row of `candidate_versions`; diversify stores
embeddings (`save_embeddings`) and clusters with the selection (`save_clusters`). Review and curation read and change
them elsewhere (their own modules).

Column names say what they hold: `gain` is the likelihood gain of the text under the instruction (mean log
P(text | instruction) - mean log P(text) per token), in `candidates` and `candidate_versions` alike (migration 0008
renamed `candidates.raw_score`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .engine import Store, Tx

# ---------------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------------
GENERATED_KEYS = ("id", "doc_id", "lang", "round_id", "instruction", "raw", "response", "gen_status", "gen_reason",
                  "model_version", "prompt_version", "sampling")


def add_generated(tx: Tx, rows: Sequence[Mapping]) -> int:
    """Insert generated candidates and their version 1 (stage 'generate'); ids already stored are skipped. Returns how
    many were new.

    Each row has GENERATED_KEYS. A rejected candidate keeps instruction NULL; its version row holds the raw model
    output (`raw`) and the reason.
    """
    if not rows:
        return 0
    marks = ", ".join("?" * len(rows))
    stored = {r[0] for r in tx.all(f"SELECT id FROM candidates WHERE id IN ({marks})", [r["id"] for r in rows])}
    new = [r for r in rows if r["id"] not in stored]
    tx.executemany(
        "INSERT OR IGNORE INTO candidates (id, doc_id, lang, round_id, instruction, response, version, gen_status, "
        "gen_reason, model_version, prompt_version, sampling) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
        [[r["id"], r["doc_id"], r["lang"], r["round_id"], r["instruction"], r["response"], r["gen_status"],
          r["gen_reason"], r["model_version"], r["prompt_version"], r["sampling"]] for r in new],
    )
    tx.executemany(
        "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, reason, round_id, model_version) "
        "VALUES (?, 1, 'generate', ?, ?, ?, ?)",
        [[r["id"], r["instruction"] or r["raw"], r["gen_reason"], r["round_id"], r["model_version"]] for r in new],
    )
    return len(new)


# ---------------------------------------------------------------------------------------------------------------------
# Refinement: labels, measurements, rewrites
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Judged:
    """An evaluator's verdict on one instruction, as stored: label, score and reason, and what it measured (the gain
    evaluator fills gain, p_good and ll_text; the trained evaluator its features, as JSON)."""

    label: str
    score: float
    reason: str
    gain: float | None = None
    p_good: float | None = None
    ll_text: float | None = None
    features: str | None = None


def _scope(lang: str | None, limit: int | None) -> tuple[str, str, list]:
    """SQL for 'of this language' and 'the first `limit` of each language by id' (refine's per-language trial limit)."""
    lang_sql, params = ("AND lang = ?", [lang]) if lang else ("", [])
    limit_sql = "" if limit is None else f"QUALIFY row_number() OVER (PARTITION BY lang ORDER BY id) <= {int(limit)}"
    return lang_sql, limit_sql, params


def unlabelled(store: Store, lang: str | None = None, limit: int | None = None) -> list[tuple[str, str, str, str]]:
    """(id, instruction, response, lang) of generated candidates without a label, by id."""
    lang_sql, limit_sql, params = _scope(lang, limit)
    with store.session() as tx:
        return tx.all(f"SELECT id, instruction, response, lang FROM candidates WHERE gen_status = 'ok' AND label IS NULL "
                      f"{lang_sql} {limit_sql} ORDER BY id", params)


def flawed_before_round(store: Store, rnd: int, lang: str | None = None,
                        limit: int | None = None) -> list[tuple[str, str, str, str, float | None, str | None]]:
    """(id, instruction, response, lang, score, label_reason) of flawed candidates that have not had rewrite round
    `rnd` yet, by id."""
    lang_sql, limit_sql, params = _scope(lang, limit)
    with store.session() as tx:
        return tx.all(f"SELECT id, instruction, response, lang, score, label_reason FROM candidates WHERE gen_status = "
                      f"'ok' AND label = 'flawed' AND refine_rounds < ? {lang_sql} {limit_sql} ORDER BY id",
                      [rnd, *params])


def rewritten_in_round(store: Store, rnd: int, lang: str | None = None) -> bool:
    """Whether round `rnd` rewrote a candidate that is still flawed (and would be refined again in round rnd + 1)."""
    lang_sql, _, params = _scope(lang, None)
    with store.session() as tx:
        return bool(tx.scalar(
            "SELECT count(*) FROM candidates WHERE gen_status = 'ok' AND label = 'flawed' AND refine_rounds = ? "
            f"{lang_sql} AND id IN (SELECT candidate_id FROM candidate_versions WHERE stage = 'refine' AND round_id = ?)",
            [rnd, *params, rnd]))


def label_counts(store: Store, lang: str | None = None) -> dict[str, int]:
    """Generated candidates per label ('unlabelled' for none)."""
    lang_sql, _, params = _scope(lang, None)
    with store.session() as tx:
        return dict(tx.all(f"SELECT coalesce(label, 'unlabelled'), count(*) FROM candidates WHERE gen_status = 'ok' "
                           f"{lang_sql} GROUP BY 1", params))


def save_label(tx: Tx, candidate_id: str, judged: Judged, model_version: str, response: str | None = None) -> None:
    """Store a first label (a candidate labelled meanwhile keeps its label) and its version row (stage 'label');
    `response` replaces the text (refine's boilerplate clean-up) when given."""
    tx.execute(
        "UPDATE candidates SET label = ?, score = ?, gain = ?, p_good = ?, ll_text = ?, features = ?, "
        "label_reason = ? WHERE id = ? AND label IS NULL",
        [judged.label, judged.score, judged.gain, judged.p_good, judged.ll_text, judged.features, judged.reason,
         candidate_id])
    if response is not None:
        tx.execute("UPDATE candidates SET response = ? WHERE id = ?", [response, candidate_id])
    tx.execute(
        "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, label, score, reason, model_version,"
        " p_good, gain, features) SELECT id, version, 'label', instruction, ?, ?, ?, ?, ?, ?, ? FROM candidates "
        "WHERE id = ?", [judged.label, judged.score, judged.reason, model_version, judged.p_good, judged.gain,
                         judged.features, candidate_id])


def mark_refined(tx: Tx, candidate_ids: Sequence[str], rnd: int) -> None:
    """These candidates have had rewrite round `rnd` (changed or not)."""
    for cid in candidate_ids:
        tx.execute("UPDATE candidates SET refine_rounds = ? WHERE id = ? AND refine_rounds < ?", [rnd, cid, rnd])


def save_rewrite(tx: Tx, candidate_id: str, instruction: str, judged: Judged, rnd: int, model_version: str) -> None:
    """Replace the instruction with a rewrite (next version, its label and measurements) and record the version
    (stage 'refine', round `rnd`)."""
    tx.execute(
        "UPDATE candidates SET instruction = ?, version = version + 1, label = ?, score = ?, gain = ?, "
        "p_good = ?, ll_text = ?, features = ?, label_reason = ? WHERE id = ?",
        [instruction, judged.label, judged.score, judged.gain, judged.p_good, judged.ll_text, judged.features,
         judged.reason, candidate_id])
    tx.execute(
        "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, label, score, reason, round_id, "
        "model_version, p_good, gain, features) SELECT id, version, 'refine', instruction, label, score, "
        "label_reason, ?, ?, p_good, gain, features FROM candidates WHERE id = ?", [rnd, model_version, candidate_id])


def history(store: Store, candidate_id: str) -> list[dict]:
    """Every version and label of a candidate, oldest first."""
    with store.session() as tx:
        return tx.dicts(
            "SELECT version, stage, instruction, label, score, reason, round_id, model_version, created_at "
            "FROM candidate_versions WHERE candidate_id = ? ORDER BY created_at, version, stage", [candidate_id])


def human_instruction_edits(store: Store, lang: str, n: int) -> list[tuple[str, str, str]]:
    """(text, instruction before, instruction after) of reviewers' edits that changed the instruction in `lang`,
    latest first (refine shows them to the rewriter as examples)."""
    with store.session() as tx:
        return tx.all(
            "SELECT d.text, dec.before->>'instruction', dec.after->>'instruction' FROM decisions dec "
            "JOIN candidates c ON c.id = dec.candidate_id JOIN documents d ON d.id = c.doc_id "
            "WHERE dec.action = 'edit' AND c.lang = ? AND dec.before->>'instruction' <> dec.after->>'instruction' "
            "ORDER BY dec.id DESC LIMIT ?", [lang, n])


# ---------------------------------------------------------------------------------------------------------------------
# Diversification: embeddings, clusters, selection
# ---------------------------------------------------------------------------------------------------------------------
def generated_langs(store: Store) -> list[str]:
    """Languages that have generated (not rejected) candidates, sorted."""
    with store.session() as tx:
        return [r[0] for r in tx.all("SELECT DISTINCT lang FROM candidates WHERE gen_status = 'ok' ORDER BY lang")]


def for_clustering(store: Store, lang: str) -> list[tuple[str, str, float | None, str | None]]:
    """(id, instruction, score, label) of a language's generated candidates with an instruction, by id."""
    with store.session() as tx:
        return tx.all("SELECT id, instruction, score, label FROM candidates WHERE gen_status = 'ok' AND lang = ? "
                      "AND instruction IS NOT NULL ORDER BY id", [lang])


def stored_embeddings(store: Store, model: str, candidate_ids: Sequence[str]) -> dict[str, tuple[str, list[float]]]:
    """candidate id -> (hash of the instruction it was computed for, vector), for those embedded by `model`."""
    with store.session() as tx:
        return {cid: (h, vec) for cid, h, vec in tx.all(
            "SELECT candidate_id, instruction_hash, vector FROM embeddings WHERE model = ? AND candidate_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [model, list(candidate_ids)])}


def save_embeddings(tx: Tx, model: str, rows: Sequence[tuple[str, str, list[float]]]) -> None:
    """Store (candidate id, instruction hash, vector) rows computed by `model`, replacing older ones."""
    tx.executemany("INSERT OR REPLACE INTO embeddings (candidate_id, model, instruction_hash, vector) "
                   "VALUES (?, ?, ?, ?)", [(cid, model, h, vec) for cid, h, vec in rows])


def save_clusters(tx: Tx, clusters) -> None:
    """Set cluster, cluster_label, cluster_distance and selected from a pyarrow table with those columns and `id`
    (one bulk update for a whole language)."""
    with tx.registered("_xi_div", clusters):
        tx.execute(
            "UPDATE candidates SET cluster = d.cluster, cluster_label = d.cluster_label, "
            "cluster_distance = d.cluster_distance, selected = d.selected FROM _xi_div d WHERE candidates.id = d.id")
