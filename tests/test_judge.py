"""Pairwise judging: the judge output parser, the both-orders rule, running a (fake) judge over stored answers with
resumption, the automatic measures, the per-language report, and the CLI against a fake OpenAI-compatible endpoint."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import add_candidates
from fake_openai import FakeEndpoint
from xinstruct import judge, judge_report
from xinstruct.cli import app
from xinstruct.errors import InputError
from xinstruct.measures import measure, repetition
from xinstruct.models.fake import FakeModel
from xinstruct.store import Store
from xinstruct.store.evals import Answer, add_answers
from xinstruct.store.judging import Judgement, add_judgements, comparisons, judgements, model_data

QSET = "vicuna-test@0000"


# -- parsing ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, scores", [
    ("Scores: 7 4\nAnswer 1 is more detailed.", (7, 4)),
    ("scores: 7, 4", (7, 4)),
    ("**Scores:** 8.5 6", (8.5, 6)),
    ("Scores: 7/10 and 4/10", (7, 4)),
    ("7/10 and 4/10", (7, 4)),
    ("I would give 6 out of 10 to the first and 9 out of 10 to the second.", (6, 9)),
    ("8 3\nThe first answer is better because it lists 5 tips.", (8, 3)),
    ('{"answer_1": 7, "answer_2": 4}', (7, 4)),
    ('```json\n{"scores": [9, 2], "reason": "..."}\n```', (9, 2)),
    ('Verdict: {"assistant_a": "6", "assistant_b": 10}', (6, 10)),
    ("Answer 1: 6/10. It is fine.\n**Answer 2**: 8/10. Better.", (6, 8)),
    ("Assistant A: 3\nAssistant B: 9", (3, 9)),
    ("The first answer gets 6, the second answer gets 9.", (6, 9)),
    ("Scores: Answer 1: 7, Answer 2: 4", (7, 4)),
    ("Scores: 0 10", (0, 10)),
])
def test_parser_reads_the_shapes_judges_write(text, scores):
    parsed = judge.parse_scores(text)
    assert parsed.ok and (parsed.first, parsed.second) == scores


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("   \n", "empty"),
    (None, "empty"),
    ("Scores: 7", "no pair"),
    ("Both answers are good.", "no pair"),
    ("Scores: 12 4", "out of 0-10"),
    ('{"answer_1": 7, "answer_2": 14}', "out of 0-10"),
    ("Answer 1 lists 3 tips and Answer 2 lists 5 tips.", "no pair"),  # counts are not scores
    ("Answer 1: 7. Answer 2: 4. On reflection, Answer 1: 5.", "two different scores"),
    ("Scores: 7 4 6", "no pair"),
    ("seven and four", "no pair"),
])
def test_parser_never_guesses(text, reason):
    parsed = judge.parse_scores(text)
    assert not parsed.ok and parsed.first is None and reason in parsed.error


# -- the both-orders rule ---------------------------------------------------------------------------------------------
def _j(position, score_a, score_b, error=None):
    return Judgement("A", "B", "j", "p", QSET, "1", "sw", position, "h", "h", "prompt", "raw", score_a, score_b, error)


@pytest.mark.parametrize("ab, ba, outcome", [
    ((8, 3), (7, 5), "win"),  # A higher in both orders
    ((3, 8), (2, 9), "loss"),  # lower in both
    ((8, 3), (3, 8), "tie"),  # each order prefers the answer shown first: position bias cancels out
    ((8, 3), (6, 6), "tie"),  # wins one order, ties the other: not a win
    ((5, 5), (5, 5), "tie"),
    ((8, 3), None, "pending"),
])
def test_a_win_needs_both_orders(ab, ba, outcome):
    by_position = {"ab": _j("ab", *ab)}
    if ba is not None:
        by_position["ba"] = _j("ba", *ba)
    assert judge.pair_outcome(by_position) == outcome


def test_an_unparseable_order_is_not_a_tie():
    by_position = {"ab": _j("ab", 8, 3), "ba": _j("ba", None, None, "no pair of scores found")}
    assert judge.pair_outcome(by_position) == "unparseable"


# -- running a judge --------------------------------------------------------------------------------------------------
def answers_for(model, texts, lang="sw", finish="stop"):
    return [Answer(model, QSET, str(i), lang, f"Question {i}?", f"prompt {i}", t, finish) for i, t in enumerate(texts)]


def shown(prompt: str, n: int) -> str:
    return prompt.split(f"[Answer {n}]")[1].split(f"[End of answer {n}]")[0].strip()


def prefers(marker: str):
    """A judge that gives 8 to the answer containing `marker` and 3 to the other."""
    def gen(prompt):
        first = marker in shown(prompt, 1)
        return "Scores: 8 3" if first else "Scores: 3 8"
    return gen


@pytest.fixture
def two_models(store):
    add_answers(store, answers_for("A", [f"Jibu zuri {i}" for i in range(4)]))
    add_answers(store, answers_for("B", [f"Weak answer {i}" for i in range(4)]))
    return store


def test_both_orders_are_asked_and_mapped_back_to_the_models(two_models):
    model = FakeModel("judge-1", generate_fn=prefers("Jibu"))
    stats = judge.run(two_models, model, "A", "B", QSET, batch_size=3)
    assert (stats.pairs, stats.judged, stats.skipped, stats.unparseable) == (4, 8, 0, 0)
    js = judgements(two_models, "A", "B")
    assert len(js) == 8 and {j.position for j in js} == {"ab", "ba"}
    for j in js:
        first = shown(j.prompt, 1)
        assert first.startswith("Jibu" if j.position == "ab" else "Weak")  # 'ab': A's answer shown first
        assert (j.score_a, j.score_b) == (8, 3) and j.parse_error is None and j.raw == (
            "Scores: 8 3" if j.position == "ab" else "Scores: 3 8")
        assert "Swahili" in j.prompt and j.judge == "judge-1" and j.prompt_version == judge.PROMPT_VERSION
    rep = judge_report.report(two_models, "A", "B", detect=lambda ts: ["sw"] * len(ts))
    assert (rep["total"]["win"], rep["total"]["tie"], rep["total"]["loss"]) == (4, 0, 0)


def test_a_judge_that_always_prefers_the_first_answer_gives_ties(two_models):
    model = FakeModel("judge-biased", generate_fn=lambda p: "Scores: 9 2")
    judge.run(two_models, model, "A", "B", QSET)
    rep = judge_report.report(two_models, "A", "B", detect=lambda ts: ["sw"] * len(ts))
    assert (rep["total"]["win"], rep["total"]["tie"], rep["total"]["loss"]) == (0, 4, 0)


def test_resumption_skips_what_was_judged_and_rejudges_changed_answers(two_models):
    calls = []

    def flaky(prompt):
        calls.append(prompt)
        if len(calls) == 5:
            raise RuntimeError("judge crashed")
        return prefers("Jibu")(prompt)

    with pytest.raises(RuntimeError):
        judge.run(two_models, FakeModel("judge-1", generate_fn=flaky), "A", "B", QSET, batch_size=2)
    assert len(judgements(two_models, "A", "B")) == 4  # two batches stored before the crash
    stats = judge.run(two_models, FakeModel("judge-1", generate_fn=prefers("Jibu")), "A", "B", QSET, batch_size=2)
    assert (stats.skipped, stats.judged) == (4, 4)
    again = judge.run(two_models, FakeModel("judge-1", generate_fn=prefers("Jibu")), "A", "B", QSET)
    assert (again.skipped, again.judged) == (8, 0)
    add_answers(two_models, [Answer("B", QSET, "2", "sw", "Question 2?", "prompt 2", "A new answer", "stop")])
    redo = judge.run(two_models, FakeModel("judge-1", generate_fn=prefers("Jibu")), "A", "B", QSET)
    assert (redo.skipped, redo.judged) == (6, 2)  # only the re-answered question, in both orders
    assert len(judgements(two_models, "A", "B")) == 8
    other = judge.run(two_models, FakeModel("judge-2", generate_fn=prefers("Jibu")), "A", "B", QSET)
    assert other.judged == 8  # another judge is another comparison


def test_questions_answered_by_one_model_only_are_counted_not_judged(store):
    add_answers(store, answers_for("A", ["x", "y", "z"]))
    add_answers(store, answers_for("B", ["x", "y"]))
    stats = judge.run(store, FakeModel("j", generate_fn=lambda p: "Scores: 5 5"), "A", "B", QSET)
    assert (stats.pairs, stats.missing, stats.judged) == (2, 1, 4)
    with pytest.raises(InputError, match="answered by both"):
        judge.run(store, FakeModel("j"), "A", "C", QSET)
    with pytest.raises(InputError, match="same model"):
        judge.run(store, FakeModel("j"), "A", "A", QSET)


def test_languages_and_limit(store):
    add_answers(store, answers_for("A", ["a1", "a2", "a3"], "sw") + answers_for("A", ["b1", "b2"], "fi"))
    add_answers(store, answers_for("B", ["a1", "a2", "a3"], "sw") + answers_for("B", ["b1", "b2"], "fi"))
    stats = judge.run(store, FakeModel("j", generate_fn=lambda p: "Scores: 5 5"), "A", "B", QSET, langs=["fi"])
    assert stats.judged == 4 and {j.lang for j in judgements(store, "A", "B")} == {"fi"}
    stats = judge.run(store, FakeModel("j", generate_fn=lambda p: "Scores: 5 5"), "A", "B", QSET, limit=1)
    assert stats.judged == 2  # sw's first question; fi's first is already judged


# -- measures ---------------------------------------------------------------------------------------------------------
def test_repetition():
    assert repetition("1. 1. 1. 1. 1. 1. 1. 1.") == pytest.approx(5 / 6)
    assert repetition("Leo ni siku nzuri sana kwa sisi sote") == 0
    assert repetition("too short") == 0


def test_measures_with_a_stub_language_id():
    texts = ["Jibu zuri sana", "", "English answer here", "tena tena tena tena"]
    m = measure(texts, "sw", ["stop", "stop", "length", None],
                detect=lambda ts: ["en" if "English" in t else "sw" for t in ts])
    assert m["n"] == 4
    assert m["empty"] == 0.25 and m["truncated"] == 0.25
    assert m["in_language"] == pytest.approx(2 / 3)  # over the three non-empty answers
    assert m["repetition"] == pytest.approx((0 + 0 + 0.5) / 3)
    assert m["mean_chars"] == pytest.approx(sum(map(len, texts)) / 4)
    assert measure([], "sw")["in_language"] is None


def test_an_answer_in_the_wrong_language_counts_against_it():
    sw = "Usimamizi mzuri wa muda unahitaji kupanga kazi zako kila siku na kuweka malengo yaliyo wazi."
    en = "Good time management means planning your tasks every day and setting clear goals for yourself."
    m = measure([sw, en], "sw")  # the project's language ID
    assert m["in_language"] == 0.5


# -- the report -------------------------------------------------------------------------------------------------------
def constructed(store: Store) -> None:
    """sw: 10 questions, 6 wins, 2 ties (one by position bias), 1 loss, 1 unparseable; fi: 2 questions, 1 loss and one
    judged in one order only."""
    rows = []

    def pair(lang, q, ab, ba, err_ba=None):
        for position, (sa, sb), err in (("ab", ab, None), ("ba", ba, err_ba)):
            rows.append(Judgement("A", "B", "judge-x", judge.PROMPT_VERSION, QSET, q, lang, position, "ha", "hb",
                                  "prompt", "Scores: ?" if err else "Scores: ok", sa, sb, err))

    for i in range(6):
        pair("sw", f"w{i}", (8, 4), (7, 5))
    pair("sw", "t1", (8, 4), (4, 8))
    pair("sw", "t2", (6, 6), (6, 6))
    pair("sw", "l1", (2, 9), (3, 8))
    pair("sw", "u1", (8, 4), (None, None), err_ba="no pair of scores found")
    pair("fi", "l1", (1, 9), (2, 9))
    rows.append(Judgement("A", "B", "judge-x", judge.PROMPT_VERSION, QSET, "p1", "fi", "ab", "ha", "hb", "prompt",
                          "Scores: 8 1", 8, 1))
    add_judgements(store, rows)
    add_answers(store, answers_for("A", ["Jibu zuri"] * 10, "sw", "stop"))
    add_answers(store, answers_for("B", ["", "Jibu", "Jibu", "Jibu"], "sw", "length"))
    store.write(lambda tx: tx.executemany(
        "INSERT INTO model_versions (name, kind, base, data_hash) VALUES (?, 'instruct', 'gemma-3-270m', ?)",
        [["A", "hash-reviewed"], ["B", "hash-all"]]))
    store.write(lambda tx: tx.execute(
        "INSERT INTO exports (id, rows, content_hash, filter, template) VALUES ('e1', 321, 'hash-reviewed', ?, "
        "'alpaca')", [json.dumps({"status": ["accepted", "edited"]})]))
    ids = add_candidates(store, [{"lang": "sw", "text": f"Maandishi {i}", "instruction": f"Explain {i}"}
                                 for i in range(4)])
    store.write(lambda tx: tx.executemany("UPDATE candidates SET review_status = ? WHERE id = ?",
                                          [["accepted", ids[0]], ["edited", ids[1]], ["accepted", ids[2]],
                                           ["rejected", ids[3]]]))


def test_report_numbers_on_a_constructed_case(store):
    constructed(store)
    rep = judge_report.report(store, "A", "B", detect=lambda ts: ["sw"] * len(ts))
    sw, fi = rep["languages"][1], rep["languages"][0]
    assert (sw["lang"], sw["pairs"], sw["win"], sw["tie"], sw["loss"], sw["unparseable"], sw["pending"]) == \
        ("sw", 10, 6, 2, 1, 1, 0)
    assert sw["decided"] == 9 and sw["win_rate"] == pytest.approx(6 / 9)
    assert (sw["win_low"], sw["win_high"]) == pytest.approx((0.3542, 0.8794), abs=1e-4)  # Wilson, 95%
    assert (sw["loss_low"], sw["loss_high"]) == pytest.approx((0.0199, 0.4350), abs=1e-4)
    assert sw["unparseable_outputs"] == 1
    assert (fi["pairs"], fi["loss"], fi["pending"], fi["decided"]) == (2, 1, 1, 1)
    total = rep["total"]
    assert (total["pairs"], total["win"], total["tie"], total["loss"], total["unparseable"], total["pending"]) == \
        (12, 6, 2, 2, 1, 1)
    assert rep["unparseable_total"] == 1 and rep["unparseable"][0]["question_id"] == "u1"
    assert sw["a"]["n"] == 10 and sw["a"]["truncated"] == 0 and sw["b"]["empty"] == 0.25
    assert sw["b"]["truncated"] == 1.0 and fi["a"]["n"] == 0
    assert rep["models"]["a"]["kind"] == "instruct" and rep["models"]["a"]["export"]["rows"] == 321
    assert rep["models"]["b"]["export"] is None  # data exported elsewhere: unknown, not invented
    flat = {r["lang"]: r for r in judge_report.table(rep)}
    assert flat["sw"]["win_ci"] == "0.35-0.88" and flat["all"]["pairs"] == 12
    rows = judge_report.model_rows(rep)
    assert rows[0]["export_status"] == "accepted,edited" and rows[0]["export_rows"] == 321
    assert flat["sw"]["accept_a"] == 0.75 and flat["sw"]["accept_b"] is None  # B's data is not from this store


def test_report_names_what_is_missing_or_ambiguous(store):
    with pytest.raises(InputError, match="no judgements of A against B"):
        judge_report.report(store, "A", "B")
    constructed(store)
    add_judgements(store, [Judgement("A", "B", "judge-y", judge.PROMPT_VERSION, QSET, "w0", "sw", "ab", "h", "h",
                                     "p", "Scores: 1 2", 1, 2)])
    with pytest.raises(InputError, match="judged 2 ways.*--judge"):
        judge_report.report(store, "A", "B")
    assert judge_report.report(store, "A", "B", judge="judge-y", detect=lambda ts: ["sw"] * len(ts))["total"]["pairs"] == 1
    assert {c["judge"] for c in comparisons(store)} == {"judge-x", "judge-y"}


def test_model_data_of_an_unregistered_model(store):
    assert model_data(store, "/models/some-base")["kind"] is None


# -- the command line, with the judge behind a fake OpenAI-compatible endpoint ------------------------------------------
def test_cli_judges_through_an_endpoint_and_reports(tmp_path, monkeypatch):
    db = tmp_path / "xi.duckdb"
    store = Store(db)
    add_answers(store, answers_for("A", [f"Jibu zuri {i}" for i in range(3)]))
    add_answers(store, answers_for("B", [f"Weak answer {i}" for i in range(3)]))
    store.close()
    monkeypatch.setenv("JUDGE_KEY", "sk-cli")
    runner = CliRunner()
    with FakeEndpoint() as ep:
        ep.content = lambda body: ("Scores: 9 2" if "Jibu" in shown(body["messages"][-1]["content"], 1)
                                   else "I refuse to rate." if "Weak answer 2" in body["messages"][-1]["content"]
                                   and shown(body["messages"][-1]["content"], 1).startswith("Weak") else "Scores: 2 9")
        args = ["eval", "judge", "--a", "A", "--b", "B", "--judge", "judge-model", "--backend", "openai",
                "--base-url", ep.base_url, "--api-key-env", "JUDGE_KEY", "--db", str(db)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "6 judged now" in result.output and "1 unparseable" in result.output
        assert len(ep.requests) == 6 and ep.requests[0]["headers"]["Authorization"] == "Bearer sk-cli"
        assert ep.requests[0]["body"]["temperature"] == 0.0 and ep.requests[0]["body"]["messages"][0]["role"] == "system"
        again = runner.invoke(app, args)
        assert again.exit_code == 0 and "0 judged now, 6 already judged" in again.output and len(ep.requests) == 6
    result = runner.invoke(app, ["eval", "report", "--a", "A", "--b", "B", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.output)
    assert (rep["total"]["win"], rep["total"]["unparseable"], rep["unparseable_total"]) == (2, 1, 1)
    assert rep["unparseable"][0]["raw"] == "I refuse to rate."
    text = runner.invoke(app, ["eval", "report", "--a", "A", "--b", "B", "--db", str(db)])
    assert text.exit_code == 0 and "win_ci" in text.output and "unparseable judge outputs" in text.output
    listed = runner.invoke(app, ["eval", "comparisons", "--db", str(db)])
    assert "judge-model" in listed.output


def test_cli_refuses_an_unknown_backend_and_a_missing_set(tmp_path):
    db = tmp_path / "xi.duckdb"
    store = Store(db)
    add_answers(store, answers_for("A", ["x"]))
    store.close()
    runner = CliRunner()
    bad = runner.invoke(app, ["eval", "judge", "--a", "A", "--b", "B", "--judge", "j", "--backend", "gpt", "--db",
                              str(db)])
    assert bad.exit_code != 0 and "--backend must be one of" in str(bad.exception or bad.output)
    none = runner.invoke(app, ["eval", "judge", "--a", "A", "--b", "B", "--judge", "j", "--backend", "openai", "--db",
                               str(db)])
    assert none.exit_code != 0 and "no answered question set in common" in str(none.exception or none.output)


def test_local_judges_get_their_chat_template(two_models):
    class Tok:
        chat_template = "{{ messages }}"

        def apply_chat_template(self, msgs, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return "<chat>" + "|".join(f"{m['role']}:{m['content']}" for m in msgs) + "<assistant>"

    model = FakeModel("judge-local", generate_fn=lambda p: "Scores: 6 6")
    model.tokenizer = Tok()
    judge.run(two_models, model, "A", "B", QSET, limit=1)
    prompts = model.calls[0][1]
    assert all(p.startswith("<chat>system:") and p.endswith("<assistant>") for p in prompts)
    assert judgements(two_models, "A", "B")[0].prompt == prompts[0]  # stored as given
    plain = judge.render_prompt(FakeModel(), judge.messages("Q?", "one", "two", "fi"))
    assert "Finnish" in plain and plain.index("[Answer 1]\none") < plain.index("[Answer 2]\ntwo")
