"""The pipeline stages' data layer: migration 0008 renames what was misnamed without losing a value, and the store
functions the stages call do what the stages relied on. (That their SQL lives in xinstruct/store/ only is checked for
every module in tests/test_layers.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import add_candidates

from xinstruct.store import MIGRATIONS, Store
from xinstruct.store import candidates as stored
from xinstruct.store import documents, registry
from xinstruct.store.schema import statements

RENAME = "0008_named_columns"
def _before_rename() -> str:
    names = [name for name, _ in MIGRATIONS]
    return names[names.index(RENAME) - 1]


def _old_store(path: Path, names: list[str]) -> Store:
    """A database with exactly these migrations applied (what an older release left behind)."""
    old = Store(path, migrate=False)
    with old.session() as tx:
        tx.execute("CREATE TABLE migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    for name, sql in MIGRATIONS:
        if name in names:
            def apply(tx, name=name, sql=sql):
                for stmt in statements(sql):
                    tx.execute(stmt)
                tx.execute("INSERT INTO migrations VALUES (?, current_timestamp)", [name])

            old.write(apply)
    return old


@pytest.mark.parametrize("made_by", ["the migration before 0008", "the release before 0008 (0008 missing only)"])
def test_a_store_with_raw_score_upgrades_and_keeps_every_gain(tmp_path, made_by):
    names = [name for name, _ in MIGRATIONS]
    applied = (names[: names.index(_before_rename()) + 1] if made_by.startswith("the migration")
               else [n for n in names if n != RENAME])
    old = _old_store(tmp_path / "old.duckdb", applied)
    assert old.migrations() == sorted(applied)
    ids = add_candidates(old, [{"lang": "sw", "text": f"Maandishi {i}.", "instruction": f"Describe {i}.",
                                "label": "good", "score": 0.5 + i / 10} for i in range(3)])
    gains = {cid: -0.125 * i if i else None for i, cid in enumerate(ids)}  # a NULL gain stays NULL
    old.write(lambda tx: [tx.execute("UPDATE candidates SET raw_score = ? WHERE id = ?", [g, cid])
                          for cid, g in gains.items()])
    old.write(lambda tx: tx.execute("INSERT INTO stage_batches (stage, batch_key, stats) VALUES ('run', 'ingest', '{}')"))
    old.close()

    new = Store(tmp_path / "old.duckdb")
    assert new.migrations() == names
    with new.session() as tx:
        assert dict(tx.all("SELECT id, gain FROM candidates")) == gains
        columns = {r[0] for r in tx.all("SELECT column_name FROM duckdb_columns() WHERE table_name = 'candidates'")}
        tables = {r[0] for r in tx.all("SELECT table_name FROM duckdb_tables()")}
        indexes = {r[0] for r in tx.all("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'candidates'")}
        scores = dict(tx.all("SELECT id, score FROM candidates"))
    assert "raw_score" not in columns and "gain" in columns
    assert "stage_batches" not in tables
    assert "candidates_doc" in indexes  # dropped for the rename, made again
    assert scores == {cid: pytest.approx(0.5 + i / 10) for i, cid in enumerate(ids)}


def test_refine_writes_gain_where_feedback_and_history_read_it(store):
    """The gain a label measured is stored as candidates.gain and in the version row (same name, same value)."""
    [cid] = add_candidates(store, [{"lang": "sw", "text": "Maandishi.", "instruction": "Describe it."}])
    judged = stored.Judged("flawed", 0.4, "loosely", gain=-0.03, p_good=0.3, ll_text=-2.5)
    store.write(lambda tx: stored.save_label(tx, cid, judged, "m1"))
    with store.session() as tx:
        assert tx.one("SELECT label, score, gain, p_good, ll_text FROM candidates") == ("flawed", 0.4, -0.03, 0.3, -2.5)
    rewrite = stored.Judged("good", 0.7, "better", gain=0.02, p_good=0.5, ll_text=-2.0)
    store.write(lambda tx: (stored.mark_refined(tx, [cid], 1), stored.save_rewrite(tx, cid, "List it.", rewrite, 1, "m1")))
    assert stored.rewritten_in_round(store, 1) is False  # rewritten, but good now: nothing for round 2
    assert [(h["stage"], h["instruction"], h["label"]) for h in stored.history(store, cid)][-2:] == [
        ("label", "Describe it.", "flawed"), ("refine", "List it.", "good")]
    with store.session() as tx:
        assert tx.all("SELECT stage, gain FROM candidate_versions WHERE stage <> 'generate' ORDER BY version") == [
            ("label", -0.03), ("refine", 0.02)]
        assert tx.one("SELECT version, refine_rounds, gain FROM candidates") == (2, 1, 0.02)
    assert stored.label_counts(store) == {"good": 1}


def test_pending_documents_are_those_no_round_used_yet(store):
    ids = add_candidates(store, [{"lang": "sw", "text": "Maandishi ya kwanza.", "instruction": "Describe it."}])
    with store.session() as tx:
        doc_id = tx.scalar("SELECT doc_id FROM candidates WHERE id = ?", [ids[0]])
        tx.execute("INSERT INTO documents (id, content_hash, text, lang, status) VALUES "
                   "('d2', 'h2', 'Maandishi mengine.', 'sw', 'kept'), ('d3', 'h3', 'Metni.', 'tr', 'kept'), "
                   "('d4', 'h4', 'Fupi.', 'sw', 'dropped')")
    assert documents.pending_by_lang(store, ["sw", "tr"], 1) == {"sw": 1, "tr": 1}  # d1 is used, d4 dropped
    assert documents.next_pending(store, {"sw": 5, "tr": 0}, 1, 10) == [("d2", "sw", "Maandishi mengine.")]
    assert doc_id not in {row[0] for row in documents.next_pending(store, {"sw": 5, "tr": 5}, 1, 10)}
    assert documents.pending_by_lang(store, [], 1) == {}


def test_model_versions_and_rounds_are_read_as_records(store):
    assert registry.current_round(store) == 1  # no round started: the first generation is round 1
    with store.session() as tx:
        tx.execute("INSERT INTO rounds (id) VALUES (1), (2)")
        tx.execute("INSERT INTO model_versions (name, kind, path, steps, final_loss, metrics, created_at) VALUES "
                   "('cal-a', 'calibration', NULL, NULL, NULL, '{\"languages\": {}}', '2026-01-01'), "
                   "('cal-b', 'calibration', NULL, NULL, NULL, '{\"languages\": {\"sw\": {}}}', '2026-02-01'), "
                   "('gen', 'generator', '/m/gen', 10, 1.5, NULL, '2026-03-01')")
    assert registry.current_round(store) == 2
    assert registry.latest(store, "calibration").name == "cal-b"
    assert registry.latest(store, "calibration").metrics == {"languages": {"sw": {}}}
    gen = registry.model_version(store, "gen")
    assert (gen.kind, gen.path, gen.steps, gen.final_loss, gen.metrics) == ("generator", "/m/gen", 10, 1.5, {})
    assert registry.model_version(store, "nope") is None
