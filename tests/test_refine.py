"""Refinement: labels, rewrites and full history with a scripted fake model; parsing of malformed verdicts."""

from __future__ import annotations

import math

import pytest

from conftest import add_candidates
from xinstruct.models.fake import FakeModel
from xinstruct.refine import (
    RefineConfig,
    Signals,
    build_label_prompt,
    clean_response,
    combine,
    history,
    parse_label,
    run,
)

TEXT_SW = ("Ugali ni chakula kikuu katika nchi nyingi za Afrika Mashariki. Hupikwa kwa kuchemsha maji kisha kuongeza "
           "unga wa mahindi kidogo kidogo huku ukikoroga mpaka uwe mzito.")
TEXT_UR = "لاہور پاکستان کا دوسرا بڑا شہر ہے اور اپنے باغات، تاریخی عمارتوں اور کھانوں کی وجہ سے مشہور ہے۔"

GOOD = "Explain how ugali is cooked and what it is eaten with."
VAGUE = "Write something."


def scripted_model():
    """Likelihood gain is high only for the good instruction; the refiner proposes it for the vague one."""

    def loglik(prompt: str, cont: str) -> float:
        if not prompt:
            return -3.0
        return -2.0 if GOOD in prompt or "Lahore" in prompt else -3.03

    def generate(prompt: str) -> str:  # the rewrite is sampled with the generation prompt
        return GOOD + "\n### extra" if prompt.endswith("### English Instruction:\n") else "Write something."

    return FakeModel(name="fake-eval", generate_fn=generate, loglik_fn=loglik)


def test_flawed_candidate_is_rewritten_then_good_and_history_is_kept(store):
    [cid, other] = add_candidates(store, [
        {"lang": "sw", "text": TEXT_SW, "instruction": VAGUE},
        {"lang": "ur", "text": TEXT_UR, "instruction": "Describe Lahore, its gardens, buildings and food."},
    ])
    model = scripted_model()
    stats = run(store, RefineConfig(rounds=3, evaluator="gain", progress=False), model=model, refiner=model)
    assert stats["labelled"] == 2 and stats["refined"] == 1
    with store.session() as tx:
        row = tx.one("SELECT instruction, label, version, refine_rounds FROM candidates WHERE id = ?", [cid])
        assert row == (GOOD, "good", 2, 1)
        assert tx.scalar("SELECT label FROM candidates WHERE id = ?", [other]) == "good"
    steps = [(h["stage"], h["instruction"], h["label"]) for h in history(store, cid)]
    assert steps == [("generate", VAGUE, None), ("label", VAGUE, "flawed"), ("refine", GOOD, "good")]


def test_limit_is_per_language(store):
    rows = [{"lang": lang, "text": f"{text} {i}", "instruction": GOOD} for lang, text in (("sw", TEXT_SW), ("ur", TEXT_UR))
            for i in range(3)]
    add_candidates(store, rows)
    stats = run(store, RefineConfig(rounds=0, limit=2, progress=False), model=scripted_model())
    assert stats["labelled"] == 4  # 2 of each language, not 2 overall
    with store.session() as tx:
        assert dict(tx.all("SELECT lang, count(*) FROM candidates WHERE label IS NOT NULL GROUP BY lang")) == {"sw": 2, "ur": 2}
    assert run(store, RefineConfig(rounds=0, limit=0, progress=False), model=scripted_model())["labelled"] == 0


def test_refine_is_resumable_and_does_not_relabel(store):
    add_candidates(store, [{"lang": "sw", "text": TEXT_SW, "instruction": GOOD}])
    model = scripted_model()
    run(store, RefineConfig(evaluator="gain", progress=False), model=model, refiner=model)
    calls = len(model.calls)
    again = run(store, RefineConfig(evaluator="gain", progress=False), model=model, refiner=model)
    assert again["labelled"] == 0 and len(model.calls) == calls


def test_a_rewrite_that_does_not_improve_is_not_kept_and_the_loop_stops(store):
    [cid] = add_candidates(store, [{"lang": "sw", "text": TEXT_SW, "instruction": VAGUE}])
    model = FakeModel(generate_fn=lambda p: "Write another thing about this.", loglik_fn=lambda p, c: -3.03 if p else -3.0)
    stats = run(store, RefineConfig(rounds=3, evaluator="gain", progress=False), model=model, refiner=model)
    assert stats["refined"] == 0 and stats["rounds"] == 1
    with store.session() as tx:
        assert tx.one("SELECT instruction, version, label FROM candidates WHERE id = ?", [cid]) == (VAGUE, 1, "flawed")


@pytest.mark.parametrize(
    "output, label",
    [
        ("good", "good"),
        ("Flawed - the instruction asks for a list", "flawed"),
        ("bad. The text is a menu.\nMore text", "bad"),
        ("", None),
        ("I think it is fine", None),
        ("good or bad, hard to say", None),
        ("### Verdict: GOOD!!!", "good"),
    ],
)
def test_parse_label_never_raises(output, label):
    got, reason = parse_label(output)
    assert got == label
    if label is None:
        assert reason.startswith(("no label", "several labels"))


def test_text_judge_records_malformed_verdicts(store):
    [cid] = add_candidates(store, [{"lang": "sw", "text": TEXT_SW, "instruction": GOOD}])
    model = FakeModel(generate_fn=lambda p: "good or bad?" if "Verdict" in p else GOOD,
                      loglik_fn=lambda p, c: -2.0 if p else -3.0)
    run(store, RefineConfig(judge="text", evaluator="gain", progress=False), model=model, refiner=model)
    with store.session() as tx:
        label, reason = tx.one("SELECT label, label_reason FROM candidates WHERE id = ?", [cid])
    assert label == "good" and "unparseable verdict" in reason


def test_prompts_are_pure_and_carry_the_texts():
    p = build_label_prompt(GOOD, TEXT_UR, "ur")
    assert "a text in Urdu" in p and TEXT_UR in p and p.endswith("### Verdict:")


def test_score_rises_with_gain_and_calibration_overrides():
    def sig(gain, p_good=0.33):
        return Signals(p_good, gain, -2.0, 500)

    assert combine(sig(0.0)) < combine(sig(0.5)) < combine(sig(1.0))
    assert combine(sig(0.0, 0.9), {"coef": [0.0, 0.0, 0.0, 0.0], "intercept": 0.0}) == pytest.approx(0.5)
    assert combine(sig(0.0), {"coef": [0.0, 0.0, -1.0, 0.0], "intercept": 0.0}) == pytest.approx(1 / (1 + math.exp(-2)))


def test_clean_response_removes_only_boilerplate_lines():
    text = "Habari njema kutoka Mombasa.\nRead more\nShare this article\n© 2024 Gazeti"
    assert clean_response(text) == "Habari njema kutoka Mombasa."


@pytest.mark.parametrize("text, ok", [
    ("Explain how ugali is cooked.", True), ("Who built the Padma Bridge?", True),
    ("Summarize the text above.", False), ("The history of Lahore.", False),
    ("Ugali is a staple food.", False),
])
def test_a_rewrite_must_read_as_an_instruction(text, ok):
    from xinstruct.refine import is_instruction

    assert is_instruction(text) is ok


def test_rewrites_that_are_not_instructions_are_never_options(store):
    from xinstruct.refine import rewrite_options

    outputs = iter(["Summarize the text above.", "Ugali is tasty.", GOOD, GOOD, VAGUE, GOOD])
    model = FakeModel(generate_fn=lambda p: next(outputs))
    opts = rewrite_options(model, [(VAGUE, TEXT_SW, "sw"), (VAGUE, TEXT_SW, "sw")], RefineConfig(variants=3))
    assert opts == [[GOOD], [GOOD]]  # per item: non-instructions, repeats and the current instruction dropped
