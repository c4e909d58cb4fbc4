"""Pairwise judgements of two models' answers (`xinstruct eval judge`), read back by `xinstruct eval report` and the
Rounds page; and the facts about the models' data a comparison report shows (model_versions, exports)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields

from .engine import Store, Tx, records, to_json, where_equal


@dataclass(frozen=True)
class Judgement:
    model_a: str
    model_b: str
    judge: str
    prompt_version: str
    question_set: str
    question_id: str
    lang: str
    position: str  # 'ab' (model_a's answer shown first) | 'ba'
    answer_a_hash: str
    answer_b_hash: str
    prompt: str
    raw: str
    score_a: float | None = None
    score_b: float | None = None
    parse_error: str | None = None
    sampling: dict | None = None
    seconds: float | None = None


_COLUMNS = [f.name for f in fields(Judgement)]
_KEY = ("model_a", "model_b", "judge", "prompt_version", "question_set")


def add_judgements(store: Store, judgements: Iterable[Judgement]) -> int:
    """Store judgements (one transaction); one already stored for the same comparison, question, language and order
    is replaced. Returns how many were written."""
    rows = [[getattr(j, c) if c != "sampling" else (to_json(j.sampling) if j.sampling is not None else None)
             for c in _COLUMNS] for j in judgements]
    if not rows:
        return 0

    def write(tx: Tx) -> None:
        tx.executemany(f"INSERT OR REPLACE INTO judgements ({', '.join(_COLUMNS)}) VALUES "
                       f"({', '.join('?' for _ in _COLUMNS)})", rows)

    store.write(write)
    return len(rows)


def judged(store: Store, model_a: str, model_b: str, judge: str, prompt_version: str, question_set: str,
           lang: str) -> dict[tuple[str, str], tuple[str, str]]:
    """What a resumed run may skip: (question_id, position) -> (answer_a_hash, answer_b_hash) already judged."""
    with store.session() as tx:
        rows = tx.all("SELECT question_id, position, answer_a_hash, answer_b_hash FROM judgements WHERE model_a = ? "
                      "AND model_b = ? AND judge = ? AND prompt_version = ? AND question_set = ? AND lang = ?",
                      [model_a, model_b, judge, prompt_version, question_set, lang])
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def judgements(store: Store, model_a: str, model_b: str, *, judge: str | None = None,
               prompt_version: str | None = None, question_set: str | None = None,
               lang: str | None = None) -> list[Judgement]:
    """The stored judgements of one comparison, ordered by set, language, question, position."""
    where, params = where_equal(model_a=model_a, model_b=model_b, judge=judge, prompt_version=prompt_version,
                                question_set=question_set, lang=lang)
    with store.session() as tx:
        rows = tx.all(f"SELECT {', '.join(_COLUMNS)} FROM judgements WHERE {where} "
                      "ORDER BY question_set, lang, question_id, position", params)
    return records(Judgement, _COLUMNS, rows, json_fields=("sampling",))


def comparisons(store: Store) -> list[dict]:
    """Every stored comparison (model_a, model_b, judge, prompt_version, question_set) with its languages, judged
    outputs, unparseable outputs and last update, newest first."""
    with store.session() as tx:
        return tx.dicts(
            f"SELECT {', '.join(_KEY)}, list(DISTINCT lang ORDER BY lang) AS langs, count(*) AS outputs, "
            "count(*) FILTER (WHERE parse_error IS NOT NULL) AS unparseable, max(created_at) AS last "
            f"FROM judgements GROUP BY {', '.join(_KEY)} ORDER BY last DESC, {', '.join(_KEY)}")


def answer_sets(store: Store, model: str) -> list[str]:
    """The question sets a model has answers for (what `--questions-set` may name)."""
    with store.session() as tx:
        return [r[0] for r in tx.all("SELECT DISTINCT question_set FROM answers WHERE model = ? ORDER BY 1", [model])]


def model_data(store: Store, name: str) -> dict:
    """What a model was trained on, as far as the store knows: its model_versions row (kind, base, data_hash, steps,
    final loss) and the export whose content hash is its data hash (rows, filter, template, path). Keys are None when
    unknown (a base model path, or data exported elsewhere)."""
    out: dict = {"name": name, "kind": None, "base": None, "data_hash": None, "steps": None, "final_loss": None,
                 "export": None}
    with store.session() as tx:
        row = tx.dicts("SELECT kind, base, data_hash, steps, final_loss FROM model_versions WHERE name = ?", [name])
        if row:
            out.update(row[0])
        if out["data_hash"]:
            exp = tx.dicts("SELECT id, created_at, rows, filter, template, path FROM exports WHERE content_hash = ? "
                           "ORDER BY created_at DESC LIMIT 1", [out["data_hash"]])
            if exp:
                e = exp[0]
                if isinstance(e["filter"], str):
                    e["filter"] = json.loads(e["filter"])
                out["export"] = e
    return out
