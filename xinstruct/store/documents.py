"""Documents: the native texts ingest stores (kept or dropped, with the reason), their MinHash LSH bands, and which of
them are still waiting for a generation round.

Ingest is the speed-critical writer here (thousands of documents a second): it hands whole batches over as pyarrow
tables (`add_documents`, one bulk insert each) and asks the deduplication questions of a batch in one session
(`dedup_probe`), so the file is held for as few, short sessions as possible while a reviewer may be waiting for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .engine import Store, Tx

# The columns ingest fills, in the order of its Arrow tables (ingested_at is the database's clock).
DOCUMENT_COLUMNS = ("id", "content_hash", "text", "lang_declared", "lang_detected", "lang_confidence", "lang", "url",
                    "source", "source_line", "timestamp", "status", "drop_reason", "drop_detail", "lang_mismatch",
                    "minhash", "meta")
BAND_COLUMNS = ("band_key", "doc_id")


def stored_ids(store: Store, ids: Sequence[str]) -> set[str]:
    """Which of these document ids are stored already (a rerun, or the same document twice, is skipped)."""
    with store.session() as tx:
        return {r[0] for r in tx.all("SELECT id FROM documents WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                                     [list(ids)])}


@dataclass
class DedupProbe:
    """What the store knows about a batch's candidates for deduplication, found in one session.

    `kept_by_hash`: content hash -> the smallest id of a kept document with that exact text;
    `band_hits`: numpy columns `i` (row of the probe) and `doc_id` (a stored document sharing an LSH band with it);
    `signatures`: (doc_id, minhash bytes) of those stored documents;
    `batch_pairs`: numpy columns `i` < `j`, rows of the probe that share a band with each other.
    """

    kept_by_hash: dict[str, str]
    band_hits: dict[str, Any]
    signatures: list[tuple[str, bytes]]
    batch_pairs: dict[str, Any]


def dedup_probe(store: Store, content_hashes: Sequence[str], probe) -> DedupProbe:
    """Exact and near-duplicate evidence for a batch. `probe` is a pyarrow table with columns `i` (the batch row) and
    `band_key` (one row per LSH band of that document); DuckDB joins it with the stored bands (no Python loop per
    document)."""
    import numpy as np

    with store.session() as tx, tx.registered("_xi_probe", probe):
        kept = dict(tx.all(
            "SELECT content_hash, min(id) FROM documents WHERE status = 'kept' AND content_hash IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY content_hash", [list(content_hashes)]))
        hits = tx.numpy("SELECT DISTINCT p.i, b.doc_id FROM _xi_probe p JOIN doc_bands b USING (band_key)")
        sigs = tx.all("SELECT id, minhash FROM documents WHERE minhash IS NOT NULL AND id IN "
                      "(SELECT unnest(?::VARCHAR[]))", [np.unique(hits["doc_id"]).tolist()])
        pairs = tx.numpy("SELECT DISTINCT a.i, b.i AS j FROM _xi_probe a JOIN _xi_probe b USING (band_key) "
                         "WHERE a.i < b.i")
    return DedupProbe(kept, hits, sigs, pairs)


def add_documents(tx: Tx, documents, bands) -> None:
    """Bulk-insert documents (a pyarrow table with DOCUMENT_COLUMNS; ids already stored are skipped) and the LSH
    bands of the kept ones (BAND_COLUMNS), in the caller's transaction."""
    tx.insert_arrow("documents", documents, list(DOCUMENT_COLUMNS), skip_existing=True)
    if len(bands):
        tx.insert_arrow("doc_bands", bands, list(BAND_COLUMNS))


def status_counts(store: Store) -> list[dict]:
    """Per language (declared, else detected, else '?'): documents by status and drop reason."""
    with store.session() as tx:
        return tx.dicts(
            "SELECT coalesce(lang, lang_detected, '?') AS lang, status, coalesce(drop_reason, '') AS reason, "
            "count(*) AS n FROM documents GROUP BY ALL ORDER BY lang, status DESC, reason")


# A document is used once: a later round generates only for documents no earlier round used.
_PENDING = """
    FROM documents d
    WHERE d.status = 'kept' AND d.lang IN ({langs})
      AND NOT EXISTS (SELECT 1 FROM candidates c WHERE c.doc_id = d.id AND c.round_id <= ?)
"""


def pending_by_lang(store: Store, langs: Sequence[str], round_id: int) -> dict[str, int]:
    """Kept documents that no round up to `round_id` has generated for, per language (languages with none left out)."""
    if not langs:
        return {}
    sql = "SELECT d.lang, count(*) " + _PENDING.format(langs=", ".join("?" * len(langs))) + " GROUP BY d.lang"
    with store.session() as tx:
        return {lang: int(n) for lang, n in tx.all(sql, [*langs, round_id])}


def next_pending(store: Store, quota: dict[str, int], round_id: int, n: int) -> list[tuple[str, str, str]]:
    """(id, lang, text) of up to `n` pending documents, at most quota[lang] of each language, in (language, id) order."""
    langs = [lang for lang in sorted(quota) if quota[lang] > 0]
    if not langs or n <= 0:
        return []
    # ids first, texts for those n only: the anti-join then reads ids and languages, not every pending document's text
    # (seconds per batch on a store of 50,000 pending documents, with the file held while the app waits)
    sql = ("SELECT p.id, p.lang, d.text FROM (SELECT id, lang FROM (SELECT d.id, d.lang, "
           "row_number() OVER (PARTITION BY d.lang ORDER BY d.id) AS rn "
           + _PENDING.format(langs=", ".join("?" * len(langs)))
           + ") q WHERE rn <= CASE lang " + " ".join("WHEN ? THEN ?" for _ in langs) + " ELSE 0 END "
           "ORDER BY lang, id LIMIT ?) p JOIN documents d ON d.id = p.id ORDER BY p.lang, p.id")
    params = [*langs, round_id, *[x for lang in langs for x in (lang, quota[lang])], n]
    with store.session() as tx:
        return [tuple(row) for row in tx.all(sql, params)]
