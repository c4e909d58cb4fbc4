"""Closing the loop: scripted reviewers over two rounds on the demo corpus prove the wiring and the report's numbers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import PACKAGE_DATA
from test_train import tiny_config, tiny_lm, models_dir, seed_file  # noqa: F401  (fixtures)
from xinstruct import feedback, generate, refine
from xinstruct.auth import User
from xinstruct.feedback import fit_calibration, in_test_half, round_report
from xinstruct.ingest import IngestConfig, ingest
from xinstruct.models.fake import FakeModel
from xinstruct.review import record_decision
from xinstruct.seed import read_seed_file
from xinstruct.store import Store, registry
from xinstruct.store.curation import reviewed_candidates
from xinstruct.store.registry import Calibration

LANGS = ["sw", "fi", "ur"]
ADMIN = User("ada", "admin")
REVIEWER = User("rafiki", "reviewer", ("sw", "fi", "ur"))


def doc_quality(text: str) -> float:
    """A hidden per-document quality in [0, 1] that both the fake evaluator and the scripted reviewers see."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:6], 16) / 0xFFFFFF


def fake_model(name="fake-gen-1"):
    def loglik(prompt, text):
        return -3.0 + (1.5 * doc_quality(text) if prompt else 0.0)

    return FakeModel(name=name, generate_fn=lambda p: "Describe what this text says about the place.",
                     loglik_fn=loglik)


def scripted_review(store, round_id):
    """Accept good documents, edit middling ones (a fixed rewrite), reject the rest; returns what was decided."""
    with store.session() as tx:
        rows = tx.all("SELECT c.id, c.instruction, d.text FROM candidates c JOIN documents d ON d.id = c.doc_id "
                      "WHERE c.round_id = ? AND c.gen_status = 'ok' ORDER BY c.id", [round_id])
    decided = {"accepted": 0, "edited": 0, "rejected": 0, "distances": []}
    for cid, instruction, text in rows:
        q = doc_quality(text)
        if q > 0.6:
            record_decision(store, cid, REVIEWER, "accept")
            decided["accepted"] += 1
        elif q > 0.3:
            new = instruction + " Mention the people involved."
            record_decision(store, cid, REVIEWER, "edit", instruction=new)
            decided["edited"] += 1
            decided["distances"].append(len(" Mention the people involved."))
        else:
            record_decision(store, cid, REVIEWER, "reject", reason="not_an_answer")
            decided["rejected"] += 1
    return decided


def run_round(store, round_id, model):
    for lang in LANGS:
        generate.run(store, generate.GenerateConfig(lang=lang, limit=7, round_id=round_id, progress=False), model=model)
    refine.run(store, refine.RefineConfig(rounds=1, evaluator="gain", progress=False), model=model, refiner=model)


def test_two_rounds_calibrate_retrain_and_report(store, tiny_lm, seed_file, models_dir, tmp_path):  # noqa: F811
    ingest(store, [PACKAGE_DATA / "demo" / f"{lang}.jsonl" for lang in LANGS], IngestConfig(progress=False))
    run_round(store, 1, fake_model())
    r1 = scripted_review(store, 1)

    result = feedback.feedback(store, train=True, train_config=tiny_config(tiny_lm, seed_file, max_tokens=384), out_dir=tmp_path)
    fitted = {lang: fit for lang, fit in result["languages"].items() if fit["calibration"]}
    assert fitted, result["languages"]
    assert result["generator_pairs"] == r1["accepted"] + r1["edited"]
    assert result["refine_examples"] == r1["edited"]
    assert result["generator"] is not None
    assert feedback.latest_version(store, "generator") == result["generator"]

    info = feedback.new_round(store)
    assert info == {"round": 2, "generator": result["generator"], "evaluator": result["calibration"]}
    assert generate.load_generator(generate.GenerateConfig(model=info["generator"]), store).name.startswith(info["generator"])

    # round 2: only unused documents, scored with the calibration
    run_round(store, 2, fake_model(name=info["generator"]))
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM (SELECT doc_id FROM candidates GROUP BY doc_id HAVING count(*) > 1)") == 0
        assert tx.scalar("SELECT count(*) FROM candidates WHERE round_id = 2") > 0
        versions = {r[0] for r in tx.all("SELECT DISTINCT c.model_version FROM candidate_versions c JOIN candidates x "
                                          "ON x.id = c.candidate_id WHERE x.round_id = 2 AND c.stage = 'label'")}
    assert versions == {f"{info['generator']}+{result['calibration']}"}
    r2 = scripted_review(store, 2)

    report = {(r["round"], r["lang"]): r for r in round_report(store)}
    for rnd, decided in [(1, r1), (2, r2)]:
        rows = [r for (n, _), r in report.items() if n == rnd]
        reviewed = sum(r["reviewed"] for r in rows)
        assert reviewed == decided["accepted"] + decided["edited"] + decided["rejected"]
        # the one definition (curate.rates): acceptance = kept / decided, edit rate = edited / kept
        kept = [r["acceptance_rate"] * r["reviewed"] for r in rows]
        edited = sum((r["edit_rate"] or 0) * k for r, k in zip(rows, kept))
        assert round(sum(kept)) == decided["accepted"] + decided["edited"] and round(edited) == decided["edited"]
        for r in rows:
            if r["edit_rate"]:
                assert r["mean_edit_distance"] == pytest.approx(np.mean(decided["distances"]), abs=0.1)
    assert all(r["generator"] == info["generator"] for (n, _), r in report.items() if n == 2)
    assert all(r["evaluator"] == result["calibration"] for (n, _), r in report.items() if n == 2)


def test_calibration_is_fitted_on_one_half_and_reported_on_the_other():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 1] + 0.3 * rng.normal(size=200) > 0).astype(int)
    test = np.arange(200) % 2 == 1
    fit = fit_calibration(X, y, test)
    assert fit.n_train == 100 and fit.n_test == 100 and fit.auc > 0.9 and fit.calibration["coef"][1] > 0
    too_few = fit_calibration(X[:4], y[:4], test[:4])
    assert too_few.calibration is None and "fewer than" in too_few.note


def test_split_by_candidate_is_stable_and_balanced():
    ids = [f"c{i}" for i in range(1000)]
    assert [in_test_half(i) for i in ids] == [in_test_half(i) for i in ids]
    assert 420 < sum(in_test_half(i) for i in ids) < 580


# ---------------------------------------------------------------------------------------------------------------------
# Feedback artefacts are rows in the store
# ---------------------------------------------------------------------------------------------------------------------
def _reviewed_store(store):
    """Three Swahili candidates: one accepted, one edited, one rejected (by a reviewer, through the decision log)."""
    from conftest import add_candidates

    ids = add_candidates(store, [
        {"lang": "sw", "text": "Arusha ni mji ulioko kaskazini mwa Tanzania.", "instruction": "Describe Arusha."},
        {"lang": "sw", "text": "Mlima Kilimanjaro ni mrefu.", "instruction": "Write it."},
        {"lang": "sw", "text": "Bofya hapa kusoma zaidi.", "instruction": "Read more."},
    ])
    record_decision(store, ids[0], REVIEWER, "accept")
    record_decision(store, ids[1], REVIEWER, "edit", instruction="Describe Mount Kilimanjaro.")
    record_decision(store, ids[2], REVIEWER, "reject", reason="poor_quality")
    return ids


def test_a_feedback_round_then_training_finds_its_pairs_in_the_store_without_any_file(
        file_store, tiny_lm, seed_file, tmp_path, monkeypatch):  # noqa: F811
    from xinstruct.train import train_generator, training_pairs

    # weights go beside the --db given (file_store), not beside $XINSTRUCT_DB nor the working folder
    monkeypatch.delenv("XINSTRUCT_MODELS", raising=False)
    monkeypatch.setenv("XINSTRUCT_DB", str(tmp_path / "elsewhere" / "other.duckdb"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    ids = _reviewed_store(file_store)
    before = sorted(p.name for p in file_store.path.parent.iterdir())

    result = feedback.feedback(file_store)
    assert (result["generator_pairs"], result["refine_examples"], result["files"]) == (2, 1, [])
    assert sorted(p.name for p in file_store.path.parent.iterdir()) == before  # no feedback/ folder, no JSONL
    assert not any(work.iterdir())
    pairs = registry.generator_pairs(file_store)
    assert [(p.candidate_id, p.instruction) for p in pairs] == sorted(
        [(ids[0], "Describe Arusha."), (ids[1], "Describe Mount Kilimanjaro.")])
    (example,) = registry.refinement_examples(file_store, "sw")
    assert (example.instruction_before, example.instruction_after) == ("Write it.", "Describe Mount Kilimanjaro.")

    # a second run reads only the new decisions: nothing new, nothing stored twice
    assert feedback.feedback(file_store)["generator_pairs"] == 0
    assert len(registry.generator_pairs(file_store)) == 2

    cfg = tiny_config(tiny_lm, seed_file, human_pairs=True, name="with-human-pairs")
    train, _ = training_pairs(cfg, file_store)
    assert {p.instruction for p in train} >= {"Describe Arusha.", "Describe Mount Kilimanjaro."}
    name = train_generator(file_store, cfg)
    assert not (tmp_path / "elsewhere").exists()
    meta = json.loads((file_store.path.parent / "models" / name / "metadata.json").read_text())
    assert meta["pairs"] == 4 + 2  # the seed file's four and the two human pairs, read from the store


def test_feedback_files_are_written_only_on_request(store, tmp_path):
    _reviewed_store(store)
    result = feedback.feedback(store, out_dir=tmp_path / "out")
    files = [Path(p) for p in result["files"]]
    assert len(files) == 2 and all(p.parent == tmp_path / "out" for p in files)
    (seed,) = [p for p in files if p.name.startswith("seed-")]
    assert sorted(p.instruction for p in read_seed_file(seed)) == ["Describe Arusha.", "Describe Mount Kilimanjaro."]


def test_calibrations_are_rows_and_the_latest_is_read_back(store):
    fits = {"sw": Calibration("sw", (0.5, -1.0, 0.1, 0.0), 0.25, 0.8, 0.7, 0.4, 10, 9),
            "fi": Calibration("fi", None, None, note="too few")}
    registry.record_feedback(store, round_id=1, last_decision=0, reviewed=19, calibration=("cal-1", {"round": 1}, fits),
                             pairs=[], examples=[])
    assert registry.calibrations(store, "cal-1")["fi"].fitted is None
    assert registry.latest_calibrations(store) == ({"sw": {"coef": [0.5, -1.0, 0.1, 0.0], "intercept": 0.25}}, "cal-1")
    assert feedback.latest_version(store, "calibration") == "cal-1"


def test_migration_0007_carries_the_watermark_calibrations_pairs_and_examples_over():
    old = Store(":memory:", migrate=False)
    old.migrate(upto="0005_trained_evaluator_features")

    def legacy(tx):
        tx.execute("INSERT INTO documents (id, content_hash, text, lang, status) VALUES "
                   "('d1', 'd1', 'maandishi', 'sw', 'kept'), ('d2', 'd2', 'teksti', 'fi', 'kept'), "
                   "('d3', 'd3', 'uusi', 'fi', 'kept')")
        tx.execute("INSERT INTO candidates (id, doc_id, lang, instruction, response, gen_status, review_status, "
                   "final_instruction, final_response) VALUES "
                   "('c1', 'd1', 'sw', 'Write.', 'maandishi', 'ok', 'edited', 'Describe.', 'maandishi'), "
                   "('c2', 'd2', 'fi', 'List.', 'teksti', 'ok', 'accepted', 'List.', 'teksti'), "
                   "('c3', 'd3', 'fi', 'Say.', 'uusi', 'ok', 'accepted', 'Say.', 'uusi')")
        # c1 and c2 were decided before the last feedback run (watermark 2); c3 after it
        tx.execute("INSERT INTO decisions (id, candidate_id, reviewer, action) VALUES "
                   "(1, 'c1', 'a', 'edit'), (2, 'c2', 'a', 'accept'), (3, 'c3', 'a', 'accept')")
        tx.execute("INSERT INTO settings VALUES ('feedback.last_decision', '2')")
        tx.execute("INSERT INTO model_versions (name, kind, metrics) VALUES ('calibration-r1-x', 'calibration', ?)",
                   [json.dumps({"round": 1, "languages": {
                       "sw": {"calibration": {"coef": [0.5, -1.0], "intercept": 0.25}, "auc": 0.8, "accuracy": 0.7,
                              "threshold": 0.4, "n_train": 10, "n_test": 9, "note": ""},
                       "fi": {"calibration": None, "auc": None, "accuracy": None, "threshold": None, "n_train": 2,
                              "n_test": 1, "note": "fewer"}}})])

    old.write(legacy)
    assert "0007_feedback_rows" in old.migrate()
    assert registry.feedback_watermark(old) == 2
    assert old.get_setting("feedback.last_decision") is None  # one home for the watermark
    assert [(p.candidate_id, p.instruction) for p in registry.generator_pairs(old)] == [("c1", "Describe."),
                                                                                       ("c2", "List.")]
    assert [(e.candidate_id, e.instruction_before, e.instruction_after)
            for e in registry.refinement_examples(old)] == [("c1", "Write.", "Describe.")]
    assert registry.latest_calibrations(old) == ({"sw": {"coef": [0.5, -1.0], "intercept": 0.25}}, "calibration-r1-x")
    # the next run starts after the carried-over watermark: only c3 is new
    assert [r["id"] for r in reviewed_candidates(old, 2)] == ["c3"]
