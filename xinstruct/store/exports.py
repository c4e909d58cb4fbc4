"""Queries for export: the one SELECT that yields the export rows, DuckDB's COPY of it to a file, the facts of the
dataset card, and the `exports` record.

`xinstruct.export` decides what to export and writes the manifest and the card; the rows themselves go from DuckDB to
the file with `COPY ... TO` (pandas is never involved), under a memory limit beyond which DuckDB's sort spills to disk.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .. import vocab as V
from ..langs import LANGS
from .curation import Filters, where_all
from .engine import Store

TEMPLATES = ("alpaca", "messages")
METADATA = ("candidate_id", "language", "document_id", "source_url", "source", "label", "score", "cluster",
            "review_status", "model_versions", "decisions")


def _lang_name_sql() -> tuple[str, list]:
    """CASE c.lang WHEN 'bn' THEN 'Bengali' ... ELSE c.lang END, with the names as parameters."""
    pairs = list(LANGS.values())
    return ("CASE c.lang " + " ".join("WHEN ? THEN ?" for _ in pairs) + " ELSE c.lang END",
            [x for lang in pairs for x in (lang.code, lang.name)])


def _id_range(start: str | None, stop: str | None) -> tuple[str, list]:
    conds, params = [], []
    if start is not None:
        conds.append("c.id >= ?")
        params.append(start)
    if stop is not None:
        conds.append("c.id < ?")
        params.append(stop)
    return " AND ".join(conds) or "TRUE", params


def _texts(drafts: bool) -> tuple[str, str]:
    """The SQL of a pair's instruction and response: the final texts (a reviewer's edit where there is one), or with
    `drafts` the texts as generated."""
    if drafts:
        return "c.instruction", "c.response"
    return "coalesce(c.final_instruction, c.instruction)", "coalesce(c.final_response, c.response)"


def export_query(filters: Filters, template: str, *, answer_hint: bool = True, start: str | None = None,
                 stop: str | None = None, drafts: bool = False) -> tuple[str, list]:
    """The SELECT that yields the export rows in their final column order (the template's head, then METADATA), and
    its parameters; `start` / `stop` narrow it to candidate ids in [start, stop) (one shard).

    Two streams sorted by candidate id and put side by side with a POSITIONAL JOIN: `wide` holds the long texts and
    touches no join, `meta` holds everything else (document, decision log, model versions) and joins only narrow rows.
    So the wide rows are sorted once (DuckDB's sort spills to disk beyond the memory limit) and never enter a hash
    table. A guard stops the export with an error if the two streams ever fell out of step.
    `drafts`: the instruction and response as generated (before any reviewer's edit) instead of the final ones.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}")
    where, params = where_all(filters)
    rng, rng_params = _id_range(start, stop)
    where, params = f"{where} AND {rng}", [*params, *rng_params]
    name_sql, name_params = _lang_name_sql()
    instruction, response = _texts(drafts)
    instruction = f"rtrim(coalesce({instruction}, ''))"
    if answer_hint:
        instruction = f"{instruction} || ' Answer in ' || {name_sql} || '.'"
    else:
        name_params = []
    if template == "alpaca":
        head = f"{instruction} AS instruction, '' AS input, {response} AS output"
        head_cols = "w.instruction, w.input, w.output"
    else:
        head = (f"[struct_pack(role := 'user', content := {instruction}), "
                f"struct_pack(role := 'assistant', content := {response})] AS messages")
        head_cols = "w.messages"
    meta_cols = ", ".join(f"m.{c}" for c in METADATA)
    # The decisions of a pair: sorted by decision id inside the list (list_sort on a struct sorts by its first field),
    # much cheaper than an ordered aggregate over the whole log. Model versions: the candidate's own and those of its
    # versions (generator, evaluator, refiner), distinct and sorted.
    sql = f"""
        WITH dec AS (
            SELECT d.candidate_id,
                   list_transform(list_sort(list(struct_pack(k := d.id, reviewer := d.reviewer, action := d.action,
                                                             at := d.created_at))),
                                  lambda x: struct_pack(reviewer := x.reviewer, action := x.action,
                                                        at := strftime(x.at, '%Y-%m-%dT%H:%M:%S'))) AS decisions
            FROM decisions d JOIN candidates c ON c.id = d.candidate_id WHERE {where} GROUP BY 1),
        mv AS (
            SELECT v.candidate_id, list(DISTINCT v.model_version) AS versions
            FROM candidate_versions v JOIN candidates c ON c.id = v.candidate_id
            WHERE v.model_version IS NOT NULL AND {where} GROUP BY 1),
        meta AS (
            SELECT c.id AS candidate_id, c.lang AS language, c.doc_id AS document_id, doc.url AS source_url,
                   doc.source AS source, c.label AS label, c.score AS score, c.cluster AS cluster,
                   c.review_status AS review_status,
                   list_sort(list_distinct(list_concat(coalesce(mv.versions, []::VARCHAR[]),
                                                       CASE WHEN c.model_version IS NULL THEN []::VARCHAR[]
                                                            ELSE [c.model_version] END))) AS model_versions,
                   coalesce(dec.decisions, []) AS decisions
            FROM candidates c
            LEFT JOIN documents doc ON doc.id = c.doc_id
            LEFT JOIN dec ON dec.candidate_id = c.id
            LEFT JOIN mv ON mv.candidate_id = c.id
            WHERE {where}
            ORDER BY c.id),
        wide AS (
            SELECT c.id AS wide_id, {head} FROM candidates c WHERE {where} ORDER BY c.id)
        SELECT {head_cols}, {meta_cols}
        FROM wide w POSITIONAL JOIN meta m
        WHERE CASE WHEN w.wide_id IS DISTINCT FROM m.candidate_id
                   THEN error('export rows out of step at ' || coalesce(m.candidate_id, w.wide_id, '?'))
                   ELSE true END
    """
    return sql, [*params, *params, *params, *name_params, *params]


def copy_query(store: Store, sql: str, params: list, path: Path, options: str, memory_limit: str | None) -> None:
    """`COPY (sql) TO path (options)` under DuckDB's `memory_limit` (the database's setting, restored afterwards; None
    leaves it as it is). `options` is the caller's fixed format text (e.g. "FORMAT json"), never user input."""
    with store.session() as tx:
        previous = tx.scalar("SELECT current_setting('memory_limit')") if memory_limit else None
        if previous:
            tx.execute("SET memory_limit = ?", [memory_limit])
        try:
            tx.execute(f"COPY ({sql}) TO ? ({options})", [*params, str(path)])
        finally:
            if previous:
                tx.execute("SET memory_limit = ?", [previous])


def shard_starts(store: Store, filters: Filters, shard_rows: int) -> list[str]:
    """The first candidate id of each shard of `shard_rows` rows, in id order (same store, same shards)."""
    where, params = where_all(filters)
    with store.session() as tx:
        return [r[0] for r in tx.all(
            f"SELECT id FROM (SELECT c.id, row_number() OVER (ORDER BY c.id) AS rn FROM candidates c WHERE {where}) "
            "WHERE (rn - 1) % ? = 0 ORDER BY id", [*params, int(shard_rows)])]


def language_lengths(store: Store, filters: Filters, *, drafts: bool = False) -> list[dict]:
    """Per language of the selected pairs (final texts, or the drafts with `drafts`): lang, rows, instr_mean,
    instr_sd, resp_mean, resp_sd, resp_min, resp_max (characters), edited."""
    where, params = where_all(filters)
    ins, resp = _texts(drafts)
    with store.session() as tx:
        return tx.dicts(
            "SELECT c.lang, count(*) AS rows,"
            f" avg(length({ins})) AS instr_mean,"
            f" stddev_samp(length({ins})) AS instr_sd,"
            f" avg(length({resp})) AS resp_mean,"
            f" stddev_samp(length({resp})) AS resp_sd,"
            f" min(length({resp})) AS resp_min,"
            f" max(length({resp})) AS resp_max,"
            f" count(*) FILTER (c.review_status = '{V.EDITED}') AS edited"
            f" FROM candidates c WHERE {where} GROUP BY 1 ORDER BY 1", params)


def sources(store: Store, filters: Filters) -> list[tuple[str, int]]:
    """(document source or '(unknown)', selected pairs), most pairs first."""
    where, params = where_all(filters)
    with store.session() as tx:
        return tx.all(
            f"SELECT coalesce(d.source, '(unknown)'), count(*) FROM candidates c LEFT JOIN documents d ON d.id = c.doc_id "
            f"WHERE {where} GROUP BY 1 ORDER BY 2 DESC, 1", params)


def model_versions_used(store: Store, filters: Filters) -> list[dict]:
    """The model versions that wrote or judged the selected pairs: name, kind, base, steps, data_hash, created_at."""
    where, params = where_all(filters)
    with store.session() as tx:
        return tx.dicts(
            f"WITH used AS (SELECT c.model_version AS name FROM candidates c WHERE {where} "
            "UNION SELECT v.model_version FROM candidate_versions v JOIN candidates c ON c.id = v.candidate_id "
            f"WHERE {where}) SELECT u.name, m.kind, m.base, m.steps, m.data_hash, m.created_at "
            "FROM used u LEFT JOIN model_versions m ON m.name = u.name WHERE u.name IS NOT NULL ORDER BY u.name",
            [*params, *params])


def record_export(store: Store, export_id: str, created: datetime, by_user: str, filter_json: str, fmt: str,
                  template: str, rows: int, content_hash: str, path: str) -> None:
    """One row in `exports` (created: naive UTC)."""
    store.write(lambda tx: tx.execute(
        "INSERT INTO exports (id, created_at, by_user, filter, format, template, rows, content_hash, path) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [export_id, created, by_user, filter_json, fmt, template, int(rows), content_hash, path]))
