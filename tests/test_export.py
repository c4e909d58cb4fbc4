"""Export: the rows and fields, round trips through `datasets` and pandas, determinism, the card, the manifest, access."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from conftest import add_candidates
from test_curate import AMINA, CURATOR, FISH_EDIT, ROWS, build
from typer.testing import CliRunner
from xinstruct import export as ex
from xinstruct import review
from xinstruct.auth import User
from xinstruct.curate import CandidateFilter
from xinstruct.errors import AccessDenied, InputError

KEPT = {"sw_news", "sw_fish", "fi_city"}  # accepted or edited in test_curate.build


@pytest.fixture
def ids(store):
    return build(store)


def run(store, tmp_path, name="out", user=CURATOR, **kw) -> ex.ExportResult:
    return ex.export(store, ex.ExportConfig(out=tmp_path / name, **kw), user=user)


def by_key(ids, rows, key="candidate_id") -> dict[str, dict]:
    names = {v: k for k, v in ids.items()}
    return {names[r[key]]: r for r in rows}


def test_jsonl_alpaca_rows_and_fields(store, ids, tmp_path):
    res = run(store, tmp_path, format="jsonl", template="alpaca")
    assert res.rows == 3 and [p.name for p in res.paths] == ["data.jsonl"]
    lines = res.paths[0].read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert list(rows[0]) == ["instruction", "input", "output", *ex.METADATA]  # fixed key order
    assert [r["candidate_id"] for r in rows] == sorted(ids[k] for k in KEPT)  # ordered by candidate id
    got = by_key(ids, rows)
    assert set(got) == KEPT
    fish = got["sw_fish"]
    assert fish["instruction"] == FISH_EDIT + " Answer in Swahili."  # the reviewer's final instruction + the hint
    assert fish["input"] == "" and fish["output"] == ROWS["sw_fish"]["text"]
    assert fish["language"] == "sw" and fish["label"] == "flawed" and fish["score"] == 0.55 and fish["cluster"] == 1
    assert fish["review_status"] == "edited" and fish["source"] == "test" and fish["source_url"] is None
    assert fish["document_id"] and fish["model_versions"] == ["test"]
    assert [(d["reviewer"], d["action"]) for d in fish["decisions"]] == [("amina", "edit")]
    assert set(fish["decisions"][0]) == {"reviewer", "action", "at"}
    city = got["fi_city"]
    assert city["instruction"].endswith("in two sentences. Answer in Finnish.")
    assert [d["reviewer"] for d in city["decisions"]] == ["amina", "juha"]
    assert "\\u" not in res.paths[0].read_text(encoding="utf-8")  # native text stays readable UTF-8


def test_jsonl_round_trips_through_datasets_and_pandas(store, ids, tmp_path):
    import datasets

    res = run(store, tmp_path, format="jsonl", template="messages")
    ds = datasets.load_dataset("json", data_files=str(res.paths[0]), split="train")
    assert ds.num_rows == 3
    assert ds.column_names == ["messages", *ex.METADATA]
    row = by_key(ids, list(ds))["sw_news"]
    assert row["messages"] == [
        {"role": "user", "content": ROWS["sw_news"]["instruction"] + " Answer in Swahili."},
        {"role": "assistant", "content": ROWS["sw_news"]["text"]},
    ]
    df = pd.read_json(res.paths[0], lines=True)
    assert len(df) == 3 and list(df.columns) == ["messages", *ex.METADATA]


def test_parquet_round_trips(store, ids, tmp_path):
    import datasets

    res = run(store, tmp_path, format="parquet", template="alpaca")
    assert [p.name for p in res.paths] == ["data.parquet"]
    df = pd.read_parquet(res.paths[0])
    assert list(df.columns) == ["instruction", "input", "output", *ex.METADATA]
    assert list(df["candidate_id"]) == sorted(ids[k] for k in KEPT)
    ds = datasets.load_dataset("parquet", data_files=str(res.paths[0]), split="train")
    assert ds.num_rows == 3 and ds.column_names == list(df.columns)
    fish = by_key(ids, list(ds))["sw_fish"]
    assert fish["instruction"] == FISH_EDIT + " Answer in Swahili."
    assert fish["decisions"][0]["action"] == "edit"


def test_hf_folder_opens_with_datasets(store, ids, tmp_path):
    import datasets

    res = run(store, tmp_path, format="hf", template="messages", shard_rows=2)
    assert [p.relative_to(res.out).as_posix() for p in res.paths] == [
        "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    assert [len(pd.read_parquet(p)) for p in res.paths] == [2, 1]
    ds = datasets.load_dataset(str(res.out), split="train")  # the card's YAML header names the shards
    assert ds.num_rows == 3 and [r["candidate_id"] for r in ds] == sorted(ids[k] for k in KEPT)
    again = datasets.load_dataset("parquet", data_files=str(res.out / "data" / "*.parquet"), split="train")
    assert again.num_rows == 3


def test_the_folder_of_each_format_opens_with_load_dataset(store, ids, tmp_path):
    import datasets

    for fmt in ("jsonl", "parquet"):
        res = run(store, tmp_path, name=fmt, format=fmt)
        assert datasets.load_dataset(str(res.out), split="train").num_rows == 3


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_two_exports_are_byte_identical(store, ids, tmp_path, fmt):
    a = run(store, tmp_path, name="a", format=fmt, shard_rows=2)
    b = run(store, tmp_path, name="b", format=fmt, shard_rows=2, user=None)
    assert a.content_hash == b.content_hash
    for pa, pb in zip(a.paths, b.paths, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    assert a.manifest.read_bytes() == b.manifest.read_bytes()
    assert a.export_id != b.export_id


def test_manifest_and_card(store, ids, tmp_path):
    res = run(store, tmp_path, format="jsonl")
    manifest = json.loads(res.manifest.read_text())
    assert manifest["rows"] == 3 and manifest["content_hash"] == res.content_hash
    (entry,) = manifest["files"]
    assert entry["path"] == "data.jsonl"
    assert entry["sha256"] == hashlib.sha256(res.paths[0].read_bytes()).hexdigest()
    assert manifest["config"]["status"] == ["accepted", "edited"]
    card = res.card.read_text(encoding="utf-8")
    assert card.startswith("---\nconfigs:")
    assert "| Finnish (fi) | 1 |" in card and "| Swahili (sw) | 2 | 1 |" in card
    assert "| test | 3 |" in card and "NonCommercial" in card  # sources and the license note
    assert "Krippendorff" in card and "exported 20" in card and "by cora" in card
    assert "| sw | 2 | 100.0% | 50.0% |" in card  # acceptance and edit rate of Swahili


def test_the_export_is_recorded(store, ids, tmp_path):
    res = run(store, tmp_path, format="parquet", template="messages", langs=("sw",), min_score=0.5)
    with store.session() as tx:
        row = tx.dicts("SELECT * FROM exports")[0]
    assert row["id"] == res.export_id and row["by_user"] == "cora" and row["rows"] == 2
    assert row["format"] == "parquet" and row["template"] == "messages" and row["content_hash"] == res.content_hash
    assert json.loads(row["filter"])["langs"] == ["sw"] and row["path"] == str(res.out.resolve())
    local = run(store, tmp_path, name="local", user=None)
    with store.session() as tx:
        by = tx.scalar("SELECT by_user FROM exports WHERE id = ?", [local.export_id])
    assert by.startswith("local:")


def test_selection(store, ids, tmp_path):
    def names(**kw):
        res = run(store, tmp_path, name=f"o{len(list(tmp_path.iterdir()))}", **kw)
        return set(by_key(ids, [json.loads(x) for x in res.paths[0].read_text().splitlines()]))

    assert names(langs=("fi",)) == {"fi_city"}
    assert names(min_score=0.85) == {"sw_news"}
    assert names(status="edited") == {"sw_fish"}
    assert names(status="rejected") == {"vi_english"}
    assert names(status="accepted,pending") == KEPT | {"th_temple", "ur_prices"}
    assert names(status="all") == set(ROWS)
    assert names(filter=CandidateFilter(search="Mombasa")) == {"sw_fish"}
    assert names(filter=CandidateFilter(search="'; DROP TABLE candidates; --")) == set()
    assert names() == KEPT  # nothing was dropped
    assert names(answer_hint=False, langs=("sw",), status="edited") == {"sw_fish"}


def test_answer_hint_can_be_left_out(store, ids, tmp_path):
    res = run(store, tmp_path, answer_hint=False, format="parquet")
    assert FISH_EDIT in set(pd.read_parquet(res.paths[0])["instruction"])


def test_a_reviewer_cannot_export(store, ids, tmp_path):
    with pytest.raises(AccessDenied):
        run(store, tmp_path, user=AMINA)
    assert not (tmp_path / "out").exists()
    assert run(store, tmp_path, name="admin", user=User("ada", "admin")).rows == 3


@pytest.mark.parametrize("kw", [dict(format="csv"), dict(template="chatml"), dict(status="done"),
                                dict(langs=("en",)), dict(memory_limit="lots"), dict(shard_rows=0)])
def test_bad_settings_are_refused(store, ids, tmp_path, kw):
    with pytest.raises(InputError):
        run(store, tmp_path, **kw)


def test_a_non_empty_folder_needs_overwrite(store, ids, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        run(store, tmp_path)
    res = run(store, tmp_path, overwrite=True)
    assert res.rows == 3 and (tmp_path / "out" / "notes.txt").read_text() == "mine"
    again = run(store, tmp_path, overwrite=True, langs=("fi",))
    assert again.rows == 1 and len(again.paths[0].read_text().splitlines()) == 1


def test_an_empty_selection_exports_nothing_cleanly(store, ids, tmp_path):
    res = run(store, tmp_path, langs=("ta",), format="parquet")
    assert res.rows == 0 and len(pd.read_parquet(res.paths[0])) == 0
    assert json.loads(res.manifest.read_text())["rows"] == 0


def test_decisions_and_versions_of_a_bulk_accepted_pair(store, tmp_path):
    (cid,) = add_candidates(store, [dict(lang="ta", text="சென்னை தமிழ்நாட்டின் தலைநகரம் ஆகும்.",
                                         instruction="What is the capital of Tamil Nadu?", score=0.9)])
    store.write(lambda tx: tx.execute(
        "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, model_version) "
        "VALUES (?, 2, 'label', 'What is the capital of Tamil Nadu?', 'eval-v2')", [cid]))
    review.record_decision(store, cid, CURATOR, "bulk_accept")
    res = run(store, tmp_path, format="parquet")
    row = pd.read_parquet(res.paths[0]).iloc[0]
    assert row["instruction"] == "What is the capital of Tamil Nadu? Answer in Tamil."
    assert list(row["model_versions"]) == ["eval-v2", "test"]
    assert [d["action"] for d in row["decisions"]] == ["bulk_accept"]
    card = res.card.read_text(encoding="utf-8")
    assert "| eval-v2 |" in card and "| test |" in card  # the card lists every model version used


def test_cli_export(file_store, tmp_path):
    from xinstruct.cli import app

    build(file_store)
    out = tmp_path / "cli"
    args = ["export", "--status", "accepted", "--lang", "sw", "--lang", "fi", "--min-score", "0.5", "--format", "jsonl",
            "--template", "alpaca", "--out", str(out), "--db", str(file_store.path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 rows" in result.output
    assert len((out / "data.jsonl").read_text().splitlines()) == 3
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "not empty" in str(again.exception or again.output)
    assert CliRunner().invoke(app, ["export", "--help"]).exit_code == 0
