"""The registry: rounds, model versions, calibrations and the feedback loop's data (generator training pairs,
refinement examples, and how far feedback has read the decision log).

Everything the loop of rounds needs to find again lives here as rows (migration 0007), not as files beside the
database: training reads its human pairs with `generator_pairs`, refinement its examples with `refinement_examples`,
labelling its calibration with `latest_calibrations`. Files are an export, written only on request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import vocab as V
from .engine import Store, Tx, to_json


# ---------------------------------------------------------------------------------------------------------------------
# Rounds
# ---------------------------------------------------------------------------------------------------------------------
def current_round(store: Store) -> int:
    """The latest round (1 until the first `round new`: round 1 is implicit)."""
    with store.session() as tx:
        return int(tx.scalar("SELECT coalesce(max(id), 1) FROM rounds") or 1)


def start_round(store: Store, generator: str | None, evaluator: str | None, notes: str | None = None) -> int:
    """Finish the current round and record the next one with these versions, in one transaction; returns its id."""

    def write(tx: Tx) -> int:
        current = tx.scalar("SELECT max(id) FROM rounds")
        if current is None:  # round 1 is implicit until the first `round new`
            tx.execute("INSERT INTO rounds (id, notes) VALUES (1, 'initial round')")
            current = 1
        tx.execute("UPDATE rounds SET finished_at = current_timestamp WHERE id = ? AND finished_at IS NULL", [current])
        tx.execute("INSERT INTO rounds (id, generator, evaluator, notes) VALUES (?, ?, ?, ?)",
                   [current + 1, generator, evaluator, notes])
        return current + 1

    return store.write(write)


# ---------------------------------------------------------------------------------------------------------------------
# Model versions
# ---------------------------------------------------------------------------------------------------------------------
def latest_version(store: Store, kind: str) -> str | None:
    """The newest model version of a kind (vocab.GENERATOR, EVALUATOR, CALIBRATION), or None."""
    with store.session() as tx:
        return tx.scalar("SELECT name FROM model_versions WHERE kind = ? ORDER BY created_at DESC, name DESC LIMIT 1",
                         [kind])


def latest_path(store: Store, kind: str) -> str | None:
    """The folder of the newest model version of a kind, or None."""
    with store.session() as tx:
        return tx.scalar("SELECT path FROM model_versions WHERE kind = ? ORDER BY created_at DESC, name DESC LIMIT 1",
                         [kind])


def version_path(store: Store, name: str) -> str | None:
    """The folder a model version was saved to (None: unknown name, or a version without weights)."""
    with store.session() as tx:
        return tx.scalar("SELECT path FROM model_versions WHERE name = ?", [name])


def version_exists(store: Store, name: str) -> bool:
    with store.session() as tx:
        return tx.scalar("SELECT 1 FROM model_versions WHERE name = ?", [name]) is not None


def recent_versions(store: Store, n: int = 10) -> list[str]:
    """Names of the newest model versions (for hints in errors)."""
    with store.session() as tx:
        return [r[0] for r in tx.all("SELECT name FROM model_versions ORDER BY created_at DESC LIMIT ?", [int(n)])]


@dataclass(frozen=True)
class ModelVersion:
    name: str
    kind: str
    path: str | None
    steps: int | None
    final_loss: float | None
    metrics: dict[str, Any]


def model_version(store: Store, name: str) -> ModelVersion | None:
    """A registered model version by name, or None."""
    with store.session() as tx:
        row = tx.one("SELECT name, kind, path, steps, final_loss, metrics FROM model_versions WHERE name = ?", [name])
    return None if row is None else ModelVersion(*row[:5], _json(row[5]))


def latest(store: Store, kind: str) -> ModelVersion | None:
    """The newest model version of a kind (generator, evaluator, calibration), or None."""
    with store.session() as tx:
        row = tx.one("SELECT name, kind, path, steps, final_loss, metrics FROM model_versions WHERE kind = ? "
                     "ORDER BY created_at DESC, name DESC LIMIT 1", [kind])
    return None if row is None else ModelVersion(*row[:5], _json(row[5]))


def _json(value: Any) -> dict:
    return json.loads(value) if isinstance(value, str) else value or {}


def register_version(store: Store, name: str, kind: str, *, base: str | None = None, path: str | None = None,
                     data_hash: str | None = None, steps: int | None = None, final_loss: float | None = None,
                     metrics: dict | None = None) -> None:
    """Record a model version (one row of `model_versions`)."""
    store.write(lambda tx: _insert_version(tx, name, kind, base, path, data_hash, steps, final_loss, metrics))


def _insert_version(tx: Tx, name, kind, base=None, path=None, data_hash=None, steps=None, final_loss=None,
                    metrics=None) -> None:
    tx.execute("INSERT INTO model_versions (name, kind, base, path, data_hash, steps, final_loss, metrics) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               [name, kind, base, path, data_hash, steps, final_loss, None if metrics is None else to_json(metrics)])


# ---------------------------------------------------------------------------------------------------------------------
# Calibrations
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """One language's fit of a calibration version; coef/intercept are None when there were too few decisions."""

    lang: str
    coef: tuple[float, ...] | None
    intercept: float | None
    auc: float | None = None
    accuracy: float | None = None
    threshold: float | None = None
    n_train: int = 0
    n_test: int = 0
    note: str = ""

    @property
    def fitted(self) -> dict | None:
        """{coef, intercept} as refine.combine takes it, or None."""
        return None if self.coef is None else {"coef": list(self.coef), "intercept": self.intercept}


def calibrations(store: Store, name: str) -> dict[str, Calibration]:
    """Every language's fit of one calibration version."""
    with store.session() as tx:
        rows = tx.all("SELECT lang, coef, intercept, auc, accuracy, threshold, n_train, n_test, note FROM calibrations "
                      "WHERE name = ? ORDER BY lang", [name])
    return {r[0]: Calibration(r[0], None if r[1] is None else tuple(r[1]), r[2], r[3], r[4], r[5], r[6] or 0, r[7] or 0,
                              r[8] or "") for r in rows}


def latest_calibrations(store: Store) -> tuple[dict[str, dict], str | None]:
    """The newest calibration version's fitted languages ({lang: {coef, intercept}}) and its name."""
    name = latest_version(store, V.CALIBRATION)
    if name is None:
        return {}, None
    return {lang: c.fitted for lang, c in calibrations(store, name).items() if c.fitted}, name


# ---------------------------------------------------------------------------------------------------------------------
# Feedback runs and their data
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorPair:
    candidate_id: str
    lang: str
    instruction: str
    response: str
    feedback_run: int = 0


@dataclass(frozen=True)
class RefinementExample:
    candidate_id: str
    lang: str
    text: str | None
    instruction_before: str | None
    instruction_after: str | None
    response_before: str | None
    response_after: str | None
    feedback_run: int = 0


def feedback_watermark(store: Store) -> int:
    """The last decision id an earlier feedback run consumed (0 before the first run)."""
    with store.session() as tx:
        return int(tx.scalar("SELECT coalesce(max(last_decision), 0) FROM feedback_runs") or 0)


def last_decision_id(store: Store) -> int:
    with store.session() as tx:
        return int(tx.scalar("SELECT coalesce(max(id), 0) FROM decisions") or 0)


def record_feedback(store: Store, *, round_id: int, last_decision: int, reviewed: int,
                    calibration: tuple[str, dict, dict[str, Calibration]] | None,
                    pairs: Sequence[GeneratorPair], examples: Sequence[RefinementExample]) -> int:
    """One feedback run in one transaction: the run (its watermark), the calibration version (`(name, metrics,
    fits)`: a model_versions row of kind calibration and one calibrations row per language), the generator pairs and
    the refinement examples. Returns the run id. Nothing is half written: a failure leaves the watermark where it was,
    so the next run reads the same decisions again."""

    def write(tx: Tx) -> int:
        name = None
        if calibration is not None:
            name, metrics, fits = calibration
            _insert_version(tx, name, V.CALIBRATION, metrics=metrics)
            if fits:
                tx.executemany(
                    "INSERT INTO calibrations (name, lang, coef, intercept, auc, accuracy, threshold, n_train, n_test, "
                    "note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[name, c.lang, None if c.coef is None else list(c.coef), c.intercept, c.auc, c.accuracy,
                      c.threshold, c.n_train, c.n_test, c.note] for c in fits.values()])
        run = int(tx.scalar("INSERT INTO feedback_runs (round_id, last_decision, reviewed, calibration) "
                            "VALUES (?, ?, ?, ?) RETURNING id", [round_id, last_decision, reviewed, name]))
        if pairs:
            tx.executemany("INSERT INTO generator_pairs (feedback_run, candidate_id, lang, instruction, response) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [[run, p.candidate_id, p.lang, p.instruction, p.response] for p in pairs])
        if examples:
            tx.executemany(
                "INSERT INTO refinement_examples (feedback_run, candidate_id, lang, text, instruction_before, "
                "instruction_after, response_before, response_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [[run, e.candidate_id, e.lang, e.text, e.instruction_before, e.instruction_after, e.response_before,
                  e.response_after] for e in examples])
        return run

    return store.write(write)


def round_watermarks(store: Store) -> dict[int, int]:
    """round id -> the decision watermark of that round's last feedback run (the highest decision id a feedback run
    of the round consumed), for every round with a feedback run; runs recorded without a round (migrated) are left out."""
    with store.session() as tx:
        return {int(r): int(w) for r, w in tx.all(
            "SELECT round_id, max(last_decision) FROM feedback_runs WHERE round_id IS NOT NULL GROUP BY 1 ORDER BY 1")}


def round_ids(store: Store) -> list[int]:
    """The rounds the store knows (round 1 is implicit until the first `round new`)."""
    with store.session() as tx:
        ids = [int(r[0]) for r in tx.all("SELECT id FROM rounds ORDER BY id")]
    return ids or [1]


def set_feedback_evaluator(store: Store, run: int, evaluator: str) -> None:
    """Note the evaluator version a feedback run retrained."""
    store.write(lambda tx: tx.execute("UPDATE feedback_runs SET evaluator = ? WHERE id = ?", [evaluator, run]))


def generator_pairs(store: Store, langs: Sequence[str] = (), *, run: int | None = None) -> list[GeneratorPair]:
    """The human pairs for generator training: of every feedback run (or of one `run`), the latest run's version of
    each candidate, optionally of some languages only; in candidate id order (a stable data hash)."""
    where, params = ["TRUE"], []
    if run is not None:
        where.append("feedback_run = ?")
        params.append(int(run))
    if langs:
        where.append(f"lang IN ({', '.join('?' for _ in langs)})")
        params += list(langs)
    with store.session() as tx:
        rows = tx.all(
            "SELECT candidate_id, lang, instruction, response, feedback_run FROM ("
            "  SELECT *, row_number() OVER (PARTITION BY candidate_id ORDER BY feedback_run DESC) AS rn "
            f"  FROM generator_pairs WHERE {' AND '.join(where)}) WHERE rn = 1 ORDER BY candidate_id", params)
    return [GeneratorPair(*r) for r in rows]


def refinement_examples(store: Store, lang: str | None = None, n: int | None = None, *,
                        run: int | None = None) -> list[RefinementExample]:
    """Human corrections, newest run first (then candidate id), optionally of one language, one run, at most `n`."""
    where, params = ["TRUE"], []
    if lang is not None:
        where.append("lang = ?")
        params.append(lang)
    if run is not None:
        where.append("feedback_run = ?")
        params.append(int(run))
    limit = "LIMIT ?" if n is not None else ""
    with store.session() as tx:
        rows = tx.all(
            "SELECT candidate_id, lang, text, instruction_before, instruction_after, response_before, response_after, "
            f"feedback_run FROM refinement_examples WHERE {' AND '.join(where)} "
            f"ORDER BY feedback_run DESC, candidate_id {limit}", [*params, *([int(n)] if n is not None else [])])
    return [RefinementExample(*r) for r in rows]

