"""The trained evaluator: features, hard negatives, fitting, storing and scoring through a real (tiny) model."""

from __future__ import annotations

import numpy as np
import pytest

from xinstruct import evaluator
from xinstruct.seed import load_seed


def test_surface_features_see_references_to_the_text():
    assert evaluator.surface("Summarize the article above.")["refers_to_text"] == 1.0
    assert evaluator.surface("Explain how malaria spreads in East Africa.")["refers_to_text"] == 0.0
    assert evaluator.surface("Who built the Padma Bridge?")["question"] == 1.0


def test_hard_negatives_fail_the_way_drafts_fail():
    pairs = load_seed("sw")
    negs = evaluator.hard_negatives(pairs, seed=1)
    kinds = {k for *_, k in negs}
    assert kinds == {"other_text", "wrong_detail", "too_broad", "refers_to_text"}
    by_text = {p.response: p for p in pairs}
    for instruction, text, lang, kind in negs:
        assert lang == "sw" and text in by_text and instruction != by_text[text].instruction
        if kind == "wrong_detail":  # one name or number replaced by one that is not in the text
            own = by_text[text].instruction
            assert [w for w in instruction.split() if w not in own.split()]
    assert evaluator.hard_negatives(pairs, seed=1) == negs  # deterministic


def test_fit_save_load_predict_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 2, n)
    rows = [{"pmi": float(yi * 2 + rng.normal()), "grounded": float(yi), "noise": float(rng.normal())} for yi in y]
    hidden = rng.normal(size=(n, 12)) + y[:, None] * 0.5
    ev = evaluator.fit(rows, y, features=["pmi", "grounded", "noise"], hidden=hidden, components=3, name="t",
                       feature_model="tiny")
    p = ev.predict(rows, hidden)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, p) > 0.9  # it learned the signal
    again = evaluator.TrainedEvaluator.load(ev.save(tmp_path / "ev"))
    assert again.features == ["pmi", "grounded", "noise"] and again.feature_model == "tiny"
    np.testing.assert_allclose(again.predict(rows, hidden), p, atol=1e-5)  # stored as float32
    with pytest.raises(ValueError, match="needs hidden states"):
        again.predict(rows, None)
