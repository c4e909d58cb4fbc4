"""Answers of instruction models to benchmark questions (`xinstruct eval answer`), read back by judging and reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from .engine import Store, Tx, records, to_json, where_equal


@dataclass(frozen=True)
class Answer:
    model: str
    question_set: str
    question_id: str
    lang: str
    question: str
    prompt: str
    answer: str
    finish_reason: str | None = None
    sampling: dict | None = None
    seconds: float | None = None


_COLUMNS = [f.name for f in fields(Answer)]


def add_answers(store: Store, answers: Iterable[Answer]) -> int:
    """Store answers (one transaction); an answer already stored for the same model, set, question and language is
    replaced. Returns how many were written."""
    rows = [[a.model, a.question_set, a.question_id, a.lang, a.question, a.prompt, a.answer, a.finish_reason,
             to_json(a.sampling) if a.sampling is not None else None, a.seconds] for a in answers]
    if not rows:
        return 0

    def write(tx: Tx) -> None:
        tx.executemany(f"INSERT OR REPLACE INTO answers ({', '.join(_COLUMNS)}) VALUES "
                       f"({', '.join('?' for _ in _COLUMNS)})", rows)

    store.write(write)
    return len(rows)


def answered_ids(store: Store, model: str, question_set: str, lang: str) -> set[str]:
    """The question ids of a set already answered by `model` in `lang` (what a resumed run skips)."""
    with store.session() as tx:
        return {r[0] for r in tx.all("SELECT question_id FROM answers WHERE model = ? AND question_set = ? AND lang = ?",
                                     [model, question_set, lang])}


def answers(store: Store, model: str, *, question_set: str | None = None, lang: str | None = None) -> list[Answer]:
    """A model's stored answers, optionally of one question set and language, ordered by set, language, question."""
    where, params = where_equal(model=model, question_set=question_set, lang=lang)
    with store.session() as tx:
        rows = tx.all(f"SELECT {', '.join(_COLUMNS)} FROM answers WHERE {where} "
                      "ORDER BY question_set, lang, question_id", params)
    return records(Answer, _COLUMNS, rows, json_fields=("sampling",))
