"""`xinstruct eval compare` (issue 16, the built-in comparisons): reviewed data vs the same documents' drafts before
review, and round N's data vs round N-1's, each tuned on a tiny random-weight model, answered, judged in both orders
and reported; reruns reuse what is stored; bad input is refused before anything is written."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from conftest import add_candidates, write_jsonl
from test_models import tiny_lm  # noqa: F401  (the session's tiny model, shared with test_models)
from typer.testing import CliRunner

from xinstruct import compare, feedback
from xinstruct.auth import User
from xinstruct.cli import app
from xinstruct.errors import InputError, XInstructError
from xinstruct.instruct import InstructConfig, read_export
from xinstruct.models.fake import FakeModel
from xinstruct.review import record_decision
from xinstruct.store import Store

REVIEWER = User("rafiki", "reviewer", ("sw", "fi"))
CURATOR = User("ada", "admin")
PAIRS = [
    {"lang": "sw", "text": "Dar es Salaam ni mji mkubwa zaidi nchini Tanzania na una bandari muhimu.",
     "instruction": "Describe the city of Dar es Salaam."},
    {"lang": "sw", "text": "Mlima Kilimanjaro ndio mlima mrefu zaidi barani Afrika.",
     "instruction": "Write about the mountain."},
    {"lang": "sw", "text": "Ziwa Victoria ni ziwa kubwa zaidi barani Afrika.", "instruction": "Tell a joke."},
    {"lang": "fi", "text": "Helsinki on Suomen pääkaupunki ja sen suurin kaupunki.",
     "instruction": "Explain what Helsinki is known for."},
    {"lang": "fi", "text": "Suomessa on paljon järviä ja metsiä.", "instruction": "Write about the country."},
    {"lang": "fi", "text": "Sauna on suomalainen perinne.", "instruction": "Describe saunas in Finland."},
]
EDITED = {1: "Write about Mount Kilimanjaro.", 4: "Write about the lakes and forests of Finland."}
QUESTIONS = [{"question_id": 1, "turns": ["How can I improve my time management skills?"]},
             {"question_id": 2, "turns": ["What are the most effective ways to deal with stress?"]}]
COUNTS = ("model_versions", "exports", "answers", "judgements")


@pytest.fixture(autouse=True)
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XINSTRUCT_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


def reviewed_store(store) -> list[str]:
    """sw: accepted, edited, rejected; fi: accepted, edited, pending."""
    ids = add_candidates(store, PAIRS)
    record_decision(store, ids[0], REVIEWER, "accept")
    record_decision(store, ids[1], REVIEWER, "edit", instruction=EDITED[1])
    record_decision(store, ids[2], REVIEWER, "reject", reason="not_an_answer")
    record_decision(store, ids[3], REVIEWER, "accept")
    record_decision(store, ids[4], REVIEWER, "edit", instruction=EDITED[4])
    return ids


def config(tiny_lm, tmp_path, **kw) -> compare.CompareConfig:
    train = InstructConfig(base=str(tiny_lm), max_steps=1, batch_size=2, grad_accum=1, max_tokens=256, lr=1e-2,
                           progress=False, device="cpu")
    defaults = dict(questions=str(write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)), langs=["sw", "fi"],
                    name="cmp", judge="fake-judge", train=train, out=str(tmp_path / "exports"), max_new_tokens=3)
    return compare.CompareConfig(**{**defaults, **kw})


def fake_answers(name: str) -> FakeModel:
    """Each model answers with its own name, so the judge can tell them apart."""
    return FakeModel(name=name, generate_fn=lambda prompt: f"An answer written by {name}.")


def prefers(word: str) -> FakeModel:
    """A judge that scores the answer containing `word` 8 and the other 3, in whichever order it is shown."""
    def score(prompt: str) -> str:
        first = prompt.split("[Answer 1]", 1)[1].split("[End of answer 1]", 1)[0]
        return "Scores: 8 3" if word in first else "Scores: 3 8"

    return FakeModel(name="fake-judge", generate_fn=score)


def counts(store) -> dict[str, int]:
    with store.session() as tx:
        return {t: tx.scalar(f"SELECT count(*) FROM {t}") for t in COUNTS}


def version(store, name) -> dict:
    with store.session() as tx:
        rows = tx.dicts("SELECT kind, data_hash, metrics FROM model_versions WHERE name = ?", [name])
    return rows[0] if rows else {}


def rows_of(folder) -> list[tuple[str, str]]:
    rows, _ = read_export(folder)
    return sorted((r.lang, r.instruction.rsplit(" Answer in", 1)[0]) for r in rows)


# ---------------------------------------------------------------------------------------------------------------------
# reviewed vs before review
# ---------------------------------------------------------------------------------------------------------------------
def test_reviewed_against_drafts_trains_answers_judges_reports_and_resumes(store, tiny_lm, tmp_path):
    reviewed_store(store)
    cfg = config(tiny_lm, tmp_path)
    result = compare.run(store, cfg, answer_model=fake_answers, judge_model=prefers("cmp-reviewed"))
    a, b = result["a"].model, result["b"].model
    assert (a, b) == ("cmp-reviewed", "cmp-drafts")
    assert result["models"] == {a: "trained", b: "trained"}
    va, vb = version(store, a), version(store, b)
    assert va["kind"] == vb["kind"] == "instruct" and va["data_hash"] != vb["data_hash"]
    exports = tmp_path / "exports"
    for name, v in ((a, va), (b, vb)):
        manifest = json.loads((exports / name / "manifest.json").read_text())
        assert manifest["content_hash"] == v["data_hash"]
    # A: the kept pairs with the reviewers' instructions; B: the drafts (as generated) of every decided pair
    assert rows_of(exports / a) == sorted([("sw", PAIRS[0]["instruction"]), ("sw", EDITED[1]),
                                           ("fi", PAIRS[3]["instruction"]), ("fi", EDITED[4])])
    assert rows_of(exports / b) == sorted((p["lang"], p["instruction"]) for p in PAIRS[:5])
    assert json.loads((exports / b / "manifest.json").read_text())["config"]["drafts"] is True
    # answers for both, both orders judged, A wins everywhere
    for name in (a, b):
        assert {lang: s["answered"] for lang, s in result["answers"][name]["langs"].items()} == {"sw": 2, "fi": 2}
    assert result["judge"].judged == 8 and result["judge"].unparseable == 0
    rep = result["report"]
    assert (rep["model_a"], rep["model_b"], rep["judge"]) == (a, b, "fake-judge")
    assert {r["lang"]: (r["win"], r["loss"]) for r in rep["languages"]} == {"fi": (2, 0), "sw": (2, 0)}
    assert rep["models"]["a"]["export"]["rows"] == 4 and rep["models"]["b"]["export"]["rows"] == 5
    # a rerun reuses the models and skips every stored answer and judgement
    before = counts(store)
    again = compare.run(store, cfg, answer_model=fake_answers, judge_model=prefers("cmp-reviewed"))
    assert again["models"] == {a: "reused", b: "reused"} and again["judge"].judged == 0
    assert counts(store) == before
    # another base under the same name is refused, not mixed with the models tuned from the first
    with pytest.raises(XInstructError, match="cmp-reviewed was tuned from base .* not gemma3-270m; pass a new --name"):
        compare.run(store, config(tiny_lm, tmp_path, train=replace(cfg.train, base="embedded")),
                    answer_model=fake_answers, judge_model=prefers("cmp-reviewed"))
    assert counts(store) == before
    # a decision since: the models no longer stand for the data, and the command says so instead of reusing them
    record_decision(store, store_ids(store)[5], REVIEWER, "accept")
    with pytest.raises(XInstructError, match="cmp-reviewed was tuned on other data.*new --name"):
        compare.run(store, cfg, answer_model=fake_answers, judge_model=prefers("cmp-reviewed"))
    assert counts(store) == before


def store_ids(store) -> list[str]:
    """Candidate ids in PAIRS order."""
    with store.session() as tx:
        by_text = dict(tx.all("SELECT d.text, c.id FROM candidates c JOIN documents d ON d.id = c.doc_id"))
    return [by_text[p["text"]] for p in PAIRS]


def test_before_kept_takes_the_drafts_of_the_kept_pairs_only(store, tiny_lm, tmp_path):
    reviewed_store(store)
    a, b = compare.plan(store, config(tiny_lm, tmp_path, before="kept"))
    assert a.rows == b.rows == {"sw": 2, "fi": 2}
    assert b.export.drafts and not a.export.drafts and set(b.export.statuses()) == {"accepted", "edited"}
    a, b = compare.plan(store, config(tiny_lm, tmp_path))
    assert (a.rows, b.rows) == ({"sw": 2, "fi": 2}, {"sw": 3, "fi": 2})


# ---------------------------------------------------------------------------------------------------------------------
# round N vs round N-1
# ---------------------------------------------------------------------------------------------------------------------
def two_rounds(store) -> list[str]:
    """Round 1: sw 0 accepted, sw 1 edited, fi 3 accepted; feedback. Round 2: sw 2 rejected, fi 4 edited, sw 1 edited
    again (other text); feedback. Then, in round 3 (no feedback yet), fi 5 accepted."""
    ids = add_candidates(store, PAIRS)
    record_decision(store, ids[0], REVIEWER, "accept")
    record_decision(store, ids[1], REVIEWER, "edit", instruction=EDITED[1])
    record_decision(store, ids[3], REVIEWER, "accept")
    feedback.feedback(store)
    feedback.new_round(store)
    record_decision(store, ids[2], REVIEWER, "reject", reason="not_an_answer")
    record_decision(store, ids[4], REVIEWER, "edit", instruction=EDITED[4])
    feedback.feedback(store)
    feedback.new_round(store)
    record_decision(store, ids[5], REVIEWER, "accept")
    return ids


def test_round_n_against_round_n_minus_1(store, tiny_lm, tmp_path):
    ids = two_rounds(store)
    cfg = config(tiny_lm, tmp_path, what="rounds")
    a, b = compare.plan(store, cfg)
    assert (a.model, b.model) == ("cmp-r2", "cmp-r1")  # the latest round with a feedback run, and the one before
    assert set(a.export.filter.ids) == {ids[0], ids[1], ids[3], ids[4]}  # fi 5, decided in round 3, is not in it
    assert set(b.export.filter.ids) == {ids[0], ids[1], ids[3]}
    result = compare.run(store, cfg, answer_model=fake_answers, judge_model=prefers("cmp-r2"))
    assert version(store, "cmp-r2")["data_hash"] != version(store, "cmp-r1")["data_hash"]
    exports = tmp_path / "exports"
    assert rows_of(exports / "cmp-r1") == sorted([("sw", PAIRS[0]["instruction"]), ("sw", EDITED[1]),
                                                  ("fi", PAIRS[3]["instruction"])])
    assert rows_of(exports / "cmp-r2") == sorted([*rows_of(exports / "cmp-r1"), ("fi", EDITED[4])])
    assert result["report"]["total"]["win"] == 4 and result["judge"].judged == 8
    # a pair of round 1 sent back to review afterwards: round 1's texts are no longer in the store, so it stops
    record_decision(store, ids[0], CURATOR, "send_to_review")
    before = counts(store)
    with pytest.raises(InputError, match=r"kept at decision \d+ were decided again later.*" + ids[0]):
        compare.run(store, config(tiny_lm, tmp_path, what="rounds", name="other"))
    assert counts(store) == before


# ---------------------------------------------------------------------------------------------------------------------
# bad input: a clear error, nothing stored
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setup, kw, message", [
    ("reviewed", {"langs": ["sw", "xx"]}, r"unknown language code 'xx' \(use one of .*sw"),
    ("pending", {}, r"no accepted or edited pairs in sw, fi: there is no reviewed data to compare \(review drafts"),
    ("rounds", {"what": "rounds", "round": 7}, r"round 7 does not exist \(rounds: 1, 2, 3\) \(pass --round .*1, 2"),
    ("rounds", {"what": "rounds", "round": 1}, r"round 1 has no earlier round to compare with \(pass --round 2"),
    ("rounds", {"what": "rounds", "round": 3}, r"round 3 has no feedback run, so its data is not fixed \(run "
                                               r"`xinstruct feedback`"),
    ("reviewed", {"what": "rounds"}, r"no round has a feedback run, so .*\(run `xinstruct feedback`"),
    ("reviewed", {"langs": ["ur"]}, r"no accepted or edited pairs in ur"),
])
def test_bad_input_is_refused_before_anything_is_written(store, tiny_lm, tmp_path, setup, kw, message):
    {"reviewed": reviewed_store, "rounds": two_rounds, "pending": lambda s: add_candidates(s, PAIRS)}[setup](store)
    before = counts(store)
    with pytest.raises(XInstructError, match=message):
        compare.run(store, config(tiny_lm, tmp_path, **kw), answer_model=fake_answers, judge_model=prefers("x"))
    assert counts(store) == before
    assert not (tmp_path / "exports").exists() and not (tmp_path / "models").exists()


# ---------------------------------------------------------------------------------------------------------------------
# the command line: the tiny model answers, the judge sits behind a fake OpenAI-compatible endpoint
# ---------------------------------------------------------------------------------------------------------------------
def test_cli_compare_end_to_end_and_rerun(file_store, tiny_lm, tmp_path, monkeypatch):
    from fake_openai import FakeEndpoint

    reviewed_store(file_store)
    file_store.close()
    db = str(file_store.path)
    questions = write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    runner = CliRunner()
    with FakeEndpoint() as ep:
        args = ["eval", "compare", "--questions", str(questions), "--lang", "sw,fi", "--name", "cli", "--base",
                str(tiny_lm), "--max-steps", "1", "--batch-size", "2", "--grad-accum", "1", "--max-tokens", "256",
                "--device", "cpu", "--max-new-tokens", "3", "--judge", "judge-model", "--judge-backend", "openai",
                "--base-url", ep.base_url, "--api-key-env", "JUDGE_KEY", "--db", db]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert "A = cli-reviewed (trained)" in first.output and "B = cli-drafts (trained)" in first.output
        assert "judged 8 now" in first.output and "win_ci" in first.output
        assert len(ep.requests) == 8
        again = runner.invoke(app, args)
        assert again.exit_code == 0, again.output
        assert "A = cli-reviewed (reused)" in again.output and "judged 0 now, 8 already judged" in again.output
        assert len(ep.requests) == 8
    assert (file_store.path.parent / "exports" / "compare" / "cli-drafts" / "manifest.json").exists()
    store = Store(db)
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM answers") == 8  # 2 questions x 2 languages x 2 models
        assert tx.scalar("SELECT count(*) FROM model_versions WHERE kind = 'instruct'") == 2
    store.close()


def test_cli_bad_round_is_one_clear_line(file_store, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    two_rounds(file_store)
    file_store.close()
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    result = subprocess.run(
        [sys.executable, "-c", "from xinstruct.cli import main; main()", "eval", "compare", "--questions",
         str(questions), "--lang", "sw", "--name", "x", "--judge", "j", "--what", "rounds", "--round", "9", "--db",
         str(file_store.path)], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XINSTRUCT_MODELS": str(tmp_path / "models")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: round 9 does not exist (rounds: 1, 2, 3)" in result.stderr
