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


def _scalar_evaluator(name="t", feature_model="fake-1"):
    """An evaluator fitted on hand-made rows: high pmi and every name found -> accepted."""
    rng = np.random.default_rng(1)
    rows, y = [], []
    for _ in range(200):
        ok = int(rng.integers(0, 2))
        rows.append({"fit": -2.0 + ok + rng.normal(0, 0.3), "prior": -3.0 + rng.normal(0, 0.3),
                     "pmi": ok * 1.0 + rng.normal(0, 0.3), "grounded": float(ok or rng.integers(0, 2)),
                     "missing": float(0 if ok else rng.integers(0, 2)), "log_words": 2.0, "refers_to_text": 0.0,
                     "question": 0.0})
        y.append(ok)
    return evaluator.fit(rows, y, features=["fit", "prior", "pmi", "grounded", "missing", "log_words", "refers_to_text",
                                            "question"], name=name, feature_model=feature_model)


def test_assess_through_a_real_model_and_the_grounding_check(tmp_path):
    """The whole path on a real transformers backend (a tiny Llama): signals, grounding, features, probability."""
    from tests.test_models import build_tiny_lm
    from xinstruct.models.hf import TransformersModel

    model = TransformersModel.load(build_tiny_lm(tmp_path / "lm"), device="cpu", batch_size=2)
    ev = _scalar_evaluator(feature_model=model.name)
    text = "Dar es Salaam ni mji mkubwa zaidi nchini Tanzania na bandari muhimu ya Afrika Mashariki."
    out = evaluator.assess(ev, model, [("Describe the port city of Dar es Salaam in Tanzania.", text, "sw"),
                                       ("Describe the port city of Mombasa in Kenya.", text, "sw")])
    assert [o.missing for o in out] == [[], ["Mombasa", "Kenya"]]
    assert "'Mombasa'" in out[1].grounding_message and out[0].grounding_message == ""
    assert all(0 < o.p_keep < 1 and np.isfinite(o.features["pmi"]) for o in out)
    assert out[0].p_keep > out[1].p_keep  # same model signals up to the names: grounding decides
    # stored features give the same probability as the live path (what `xinstruct feedback` retrains on)
    np.testing.assert_allclose(ev.predict_stored([o.features for o in out]), [o.p_keep for o in out], atol=1e-9)


def test_retrain_learns_from_human_decisions(tmp_path):
    base = _scalar_evaluator()
    # reviewers in this store accept drafts with a question mark, which the shipped data never saw
    stored = [{**{c: 0.0 for c in base.columns}, "question": float(q), "pmi": 0.5, "grounded": 1.0} for q in (0, 1) * 40]
    y = [q for q in (0, 1) * 40]
    new = evaluator.retrain(base, stored, y, name="r1")
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, new.predict_stored(stored)) > roc_auc_score(y, base.predict_stored(stored)) + 0.3
    assert new.train[0].shape[0] == base.train[0].shape[0] + len(stored)
    again = evaluator.TrainedEvaluator.load(new.save(tmp_path / "r1"))
    np.testing.assert_allclose(again.predict_stored(stored), new.predict_stored(stored), atol=1e-5)


def test_generate_keeps_the_draft_the_evaluator_prefers(store, monkeypatch, tmp_path):
    """samples > 1: the first draft plus sampled ones; the one whose names are in the text wins."""
    from tests.conftest import write_jsonl
    from xinstruct import generate
    from xinstruct.ingest import IngestConfig, ingest
    from xinstruct.models.fake import FakeModel

    text = ("Dar es Salaam ni mji mkubwa zaidi nchini Tanzania na bandari muhimu ya Afrika Mashariki. Mji huu una "
            "wakazi wengi na biashara nyingi, na meli kutoka nchi nyingi hufika bandarini kila siku ya wiki.") * 3
    drafts = iter(["Describe the port city of Mombasa in Kenya.", "Describe the port city of Dar es Salaam in Tanzania.",
                   "Summarize the text above."])
    model = FakeModel(name="fake-1", generate_fn=lambda p: next(drafts))
    monkeypatch.setattr(evaluator, "current", lambda store=None: _scalar_evaluator(feature_model="fake-1"))
    corpus = write_jsonl(tmp_path / "sw.jsonl", [{"text": text, "lang": "sw"}])
    ingest(store, [corpus], IngestConfig(progress=False))
    stats = generate.run(store, generate.GenerateConfig(samples=3, progress=False), model=model)
    assert stats["ok"] == 1
    with store.session() as tx:
        instruction, sampling = tx.one("SELECT instruction, sampling FROM candidates")
    assert instruction == "Describe the port city of Dar es Salaam in Tanzania."
    assert '"samples": 3' in sampling


def test_a_grounded_draft_beats_an_ungrounded_one_with_a_higher_p_keep(store, monkeypatch, tmp_path):
    """Among the drafts of one document, one naming something the text does not is kept only when every draft does."""
    from tests.conftest import write_jsonl
    from xinstruct import generate
    from xinstruct.ingest import IngestConfig, ingest
    from xinstruct.models.fake import FakeModel

    text = ("Dar es Salaam ni mji mkubwa zaidi nchini Tanzania na bandari muhimu ya Afrika Mashariki. Mji huu una "
            "wakazi wengi na biashara nyingi, na meli kutoka nchi nyingi hufika bandarini kila siku ya wiki.") * 3
    scored = {"Describe the port city of Mombasa in Kenya.": evaluator.Assessment(0.9, {}, ["Mombasa"], "x"),
              "Describe a large port city of East Africa.": evaluator.Assessment(0.4, {}, [], "")}
    drafts = iter(scored)
    model = FakeModel(name="fake-1", generate_fn=lambda p: next(drafts))
    monkeypatch.setattr(evaluator, "current", lambda store=None: _scalar_evaluator(feature_model="fake-1"))
    monkeypatch.setattr(evaluator, "assess", lambda ev, m, items: [scored[i] for i, _, _ in items])
    ingest(store, [write_jsonl(tmp_path / "sw.jsonl", [{"text": text, "lang": "sw"}])], IngestConfig(progress=False))
    generate.run(store, generate.GenerateConfig(samples=2, progress=False), model=model)
    with store.session() as tx:
        assert tx.scalar("SELECT instruction FROM candidates") == "Describe a large port city of East Africa."


def test_the_shipped_evaluator_scores_with_the_adapter_it_was_trained_on():
    """The shipped generator adapter may be newer than the evaluator: the evaluator's features must still come from
    the exact model it was trained on (its own copy of that adapter), and a missing one is refused, not substituted."""
    from dataclasses import replace

    from xinstruct.errors import ConfigError
    from xinstruct.models.embedded import shipped_adapter
    from xinstruct.models.hf import read_metadata

    ev = evaluator.load_default()
    folder = evaluator.feature_adapter(ev)
    assert f"gemma3-270m+{read_metadata(folder)['name']}" == ev.feature_model
    generator = read_metadata(shipped_adapter())["name"]
    if f"gemma3-270m+{generator}" != ev.feature_model:
        assert folder != shipped_adapter()  # the evaluator's own copy, not the newer generator
    assert evaluator.feature_adapter(replace(ev, feature_model="gemma3-270m")) is None  # the bare base
    with pytest.raises(ConfigError, match="lacks"):
        evaluator.feature_adapter(replace(ev, feature_model="gemma3-270m+xi-backward-v0"))
