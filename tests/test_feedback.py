"""Closing the loop: scripted reviewers over two rounds on the demo corpus prove the wiring and the report's numbers."""

from __future__ import annotations

import hashlib

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
