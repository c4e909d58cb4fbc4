"""The registry: rounds of generation and the model versions (generators, evaluators, calibrations) the stages use.

Only what the pipeline stages and their commands read lives here so far; `xinstruct feedback` and training write the
same tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .engine import Store


def current_round(store: Store) -> int:
    """The latest round (1 when no round was started: the first generation is round 1)."""
    with store.session() as tx:
        return tx.scalar("SELECT max(id) FROM rounds") or 1


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
    if isinstance(value, str):
        return json.loads(value)
    return value or {}
