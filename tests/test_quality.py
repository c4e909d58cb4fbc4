"""Labels, agreement metrics and `xinstruct eval labels` (fake scores; the trained evaluator in test_evaluator.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xinstruct import quality
from xinstruct.errors import XInstructError


def _write(tmp_path, rows, name="labels.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_read_labels_accepts_text_or_response_and_names_the_bad_line(tmp_path):
    ok = {"id": "a", "lang": "sw", "instruction": "Explain malaria.", "text": "Malaria ni ugonjwa.", "label": "accept"}
    path = _write(tmp_path, [ok, {**ok, "id": "b", "text": None, "response": "Jibu.", "label": "edit", "gold": "G"}])
    got = quality.read_labels(path)
    assert [(x.id, x.text, x.label, x.gold) for x in got] == [("a", "Malaria ni ugonjwa.", "accept", None),
                                                             ("b", "Jibu.", "edit", "G")]
    for bad, message in [("{not json", "line 2: not valid JSON"), ({**ok, "label": "good"}, "line 2: label 'good'"),
                         ({**ok, "instruction": ""}, "line 2: missing instruction"),
                         ({**ok, "lang": "xx"}, "line 2")]:
        with pytest.raises(XInstructError, match=message):
            quality.read_labels(_write(tmp_path, [ok, bad], "bad.jsonl"))


def test_agreement_auc_and_calibration_by_hand():
    labels = ["accept"] * 5 + ["edit"] * 5 + ["reject"] * 5
    perfect = [0.9] * 5 + [0.5] * 5 + [0.1] * 5
    a = quality.agreement(labels, perfect)
    assert (a.n, a.accept, a.edit, a.reject) == (15, 5, 5, 5)
    assert a.auc_accept == 1.0 and a.auc_usable == 1.0
    # Brier against kept (accept or edit): accepts (0.9-1)^2, edits (0.5-1)^2, rejects 0.1^2
    assert a.brier == pytest.approx(round((5 * 0.01 + 5 * 0.25 + 5 * 0.01) / 15, 3))
    inverted = quality.agreement(labels, [1 - s for s in perfect])
    assert inverted.auc_accept == 0.0 and inverted.auc_usable == 0.0
    # too few of a class: no AUC rather than noise; unscored pairs are left out
    small = quality.agreement(["accept", "reject", "reject"], [0.9, 0.1, None])
    assert small.n == 2 and small.auc_accept is None


def test_expected_calibration_error():
    y = np.array([1, 0, 1, 0], dtype=float)
    assert quality.expected_calibration_error(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.0)
    assert quality.expected_calibration_error(y, np.array([0.9, 0.9, 0.9, 0.9])) == pytest.approx(0.4)


def test_by_language_reports_each_language_and_all():
    items = [quality.Label(str(i), lang, "I", "T", lab) for i, (lang, lab) in
             enumerate([("sw", "accept"), ("sw", "reject"), ("ur", "edit")])]
    out = quality.by_language(items, {"0": 0.8, "1": 0.2, "2": 0.5})
    assert set(out) == {"sw", "ur", "all"} and out["all"].n == 3 and out["ur"].edit == 1


def test_store_labels_use_the_reviewed_instruction_and_the_score_then(store):
    from tests.conftest import add_candidates
    from xinstruct.review import record_decision
    from xinstruct.auth import User

    ids = add_candidates(store, [
        {"lang": "sw", "text": f"Maandishi {i}.", "instruction": f"Explain topic {i}.", "score": s}
        for i, s in enumerate([0.9, 0.4, 0.2, 0.7])])
    amina = User("amina", "reviewer", ("sw",))
    record_decision(store, ids[0], amina, "accept")
    record_decision(store, ids[1], amina, "edit", instruction="Explain topic one, briefly.")
    record_decision(store, ids[2], amina, "reject", reason="poor_quality")
    got = {x.id: x for x in quality.store_labels(store)}
    assert set(got) == set(ids[:3])  # the undecided one is not a label
    assert (got[ids[0]].label, got[ids[1]].label, got[ids[2]].label) == ("accept", "edit", "reject")
    assert got[ids[1]].gold == "Explain topic one, briefly." and got[ids[1]].instruction == "Explain topic 1."
    assert quality.score_labels(list(got.values()), "stored") == {ids[0]: 0.9, ids[1]: 0.4, ids[2]: 0.2}


def test_suggestion_is_unproven_until_enough_reviews_then_shows_the_measured_agreement(store):
    from tests.conftest import add_candidates
    from xinstruct.auth import User
    from xinstruct.review import record_decision

    amina = User("amina", "reviewer", ("sw",))
    n = quality.MIN_PROVEN
    # scores that agree with the decisions: high scores accepted, low ones rejected
    ids = add_candidates(store, [{"lang": "sw", "text": f"Maandishi namba {i}.", "instruction": f"Explain item {i}.",
                                  "score": (0.9 if i % 3 == 0 else 0.1)} for i in range(n)])
    for i, cid in enumerate(ids[: n - 1]):
        if i % 3 == 0:
            record_decision(store, cid, amina, "accept")
        else:
            record_decision(store, cid, amina, "reject", reason="poor_quality")
    before = quality.suggestion_status(store, "sw")
    assert not before.proven and before.text == f"unproven for sw: {n - 1} of {n} reviews so far"
    record_decision(store, ids[-1], amina, "reject", reason="poor_quality")
    after = quality.suggestion_status(store, "sw")
    assert after.proven and after.agreement.auc_accept == 1.0
    assert after.text == f"agreed with sw reviewers: ROC-AUC 1.00 over {n} reviews"
    assert not quality.suggestion_status(store, "ur").proven  # per language


def test_eval_labels_command_reports_the_stored_scores_per_language(file_store, monkeypatch):
    import json as _json

    from typer.testing import CliRunner

    from tests.conftest import add_candidates
    from xinstruct.auth import User
    from xinstruct.cli import app
    from xinstruct.review import record_decision

    amina = User("amina", "reviewer", ("sw",))
    ids = add_candidates(file_store, [{"lang": "sw", "text": f"Maandishi {i}.", "instruction": f"Explain {i}.",
                                       "score": 0.9 if i < 6 else 0.1} for i in range(12)])
    for i, cid in enumerate(ids):
        if i < 6:
            record_decision(file_store, cid, amina, "accept")
        else:
            record_decision(file_store, cid, amina, "reject", reason="poor_quality")
    file_store.close()
    result = CliRunner().invoke(app, ["eval", "labels", "--evaluator", "stored", "--json", "--db", str(file_store.path)])
    assert result.exit_code == 0, result.output
    report = _json.loads(result.output)
    assert report["sw"]["n"] == 12 and report["sw"]["auc_accept"] == 1.0 and report["all"]["reject"] == 6
    bad = CliRunner().invoke(app, ["eval", "labels", "--evaluator", "magic", "--db", str(file_store.path)])
    assert bad.exit_code != 0
