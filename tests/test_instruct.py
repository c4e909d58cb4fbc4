"""Instruction tuning on an export and answering question files (issue 16, first half), on a tiny random-weight model.

The export is made by the real export code from a store; question files come in the shapes of ../shared/data/eval.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import add_candidates, write_jsonl
from test_models import tiny_lm  # noqa: F401  (the session's tiny model, shared with test_models)
from typer.testing import CliRunner

from xinstruct.cli import app
from xinstruct.errors import ConfigError, InputError, XInstructError
from xinstruct.export import ExportConfig, export
from xinstruct.instruct import (AnswerConfig, InstructConfig, SFTRow, answer_questions, build_prompt, encode_sft,
                                question_set_name, questions_for, read_export, read_questions, train_instruct,
                                with_hint)
from xinstruct.models.base import Generation
from xinstruct.store.evals import answered_ids, answers

PAIRS = [
    {"lang": "sw", "text": "Dar es Salaam ni mji mkubwa zaidi nchini Tanzania na una bandari muhimu.",
     "instruction": "Describe the city of Dar es Salaam."},
    {"lang": "sw", "text": "Mlima Kilimanjaro ndio mlima mrefu zaidi barani Afrika.",
     "instruction": "Write about Mount Kilimanjaro."},
    {"lang": "fi", "text": "Helsinki on Suomen pääkaupunki ja sen suurin kaupunki.",
     "instruction": "Explain what Helsinki is known for."},
    {"lang": "fi", "text": "Suomessa on paljon järviä. " * 30, "instruction": "Summarize the text about Finnish lakes."},
]
QUESTIONS = [
    {"question_id": 1, "turns": ["How can I improve my time management skills?"], "lang": "en"},
    {"question_id": 2, "turns": ["What are the most effective ways to deal with stress?"], "lang": "en"},
    {"question_id": 3, "turns": ["What is the capital of Tanzania?", "And of Kenya?"]},
]
runner = CliRunner()


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XINSTRUCT_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


def _exported(store, out, template="alpaca", fmt="jsonl"):
    if not store_has_rows(store):
        add_candidates(store, PAIRS)
        store.write(lambda tx: tx.execute("UPDATE candidates SET review_status = 'accepted'"))
    return export(store, ExportConfig(out=out, template=template, format=fmt))


def store_has_rows(store) -> bool:
    with store.session() as tx:
        return bool(tx.scalar("SELECT count(*) FROM candidates"))


@pytest.fixture
def export_dir(store, tmp_path):
    return _exported(store, tmp_path / "export").out


def _write_export(folder, rows):
    """An export folder written by hand (manifest with the right sha256), to test rows the exporter never writes."""
    folder.mkdir(parents=True)
    data = write_jsonl(folder / "data.jsonl", rows)
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(
        {"rows": len(rows), "content_hash": "h" * 64, "files": [{"path": "data.jsonl", "sha256": sha}]}))
    return folder


def tiny_cfg(tiny_lm, export_dir, **kw) -> InstructConfig:
    defaults = dict(export=str(export_dir), base=str(tiny_lm), max_steps=1, batch_size=2, grad_accum=1, max_tokens=256,
                    lr=1e-2, progress=False, device="cpu")
    return InstructConfig(**{**defaults, **kw})


# ---------------------------------------------------------------------------------------------------------------------
# Template and export reading
# ---------------------------------------------------------------------------------------------------------------------
def test_the_answer_hint_is_added_once_inside_the_alpaca_template():
    assert with_hint("Describe Dar es Salaam.", "sw") == "Describe Dar es Salaam. Answer in Swahili."
    assert with_hint("Describe Dar es Salaam. Answer in Swahili.", "sw") == "Describe Dar es Salaam. Answer in Swahili."
    prompt = build_prompt(with_hint("Rewrite the sentence.", "fi"), "Tämä on lause.")
    assert prompt.startswith("Below is an instruction that describes a task, paired with an input")
    assert "### Instruction:\nRewrite the sentence. Answer in Finnish.\n\n### Input:\nTämä on lause.\n\n" in prompt
    assert prompt.endswith("### Response:\n")
    assert "### Input" not in build_prompt("Hello?")


@pytest.mark.parametrize("template, fmt", [("alpaca", "jsonl"), ("messages", "jsonl"), ("messages", "parquet")])
def test_both_templates_read_back_as_the_same_rows(store, tmp_path, template, fmt):
    rows, manifest = read_export(_exported(store, tmp_path / "e", template, fmt).out)
    assert [(r.lang, r.instruction, r.response) for r in rows] == [
        (r.lang, r.instruction, r.response) for r in read_export(_exported(store, tmp_path / "ref").out)[0]]
    assert len(rows) == 4 and manifest["rows"] == 4 and len(manifest["content_hash"]) == 64
    assert {r.instruction.count("Answer in") for r in rows} == {1}  # the export's hint is not doubled
    assert rows[0].prompt.count("Answer in") == 1


def test_bad_exports_name_the_file_the_line_and_what_to_do(tmp_path, export_dir):
    good = {"instruction": "Say hi.", "input": "", "output": "Habari.", "language": "sw"}
    cases = [
        ({"instruction": "Say hi.", "input": "", "language": "sw"}, "empty or missing response"),
        ({**good, "language": "xx"}, "language 'xx' is not one of"),
        ({"messages": [{"role": "assistant", "content": "x"}], "language": "sw"}, "a user turn followed by an assistant"),
        ([1, 2], "expected a JSON object"),
    ]
    for i, (bad, message) in enumerate(cases):
        folder = _write_export(tmp_path / f"bad{i}", [good, bad])
        with pytest.raises(InputError, match=message) as err:
            read_export(folder)
        assert "data.jsonl:2:" in str(err.value) and "export again or fix the row" in str(err.value)
    broken = _write_export(tmp_path / "broken", [good])
    (broken / "data.jsonl").write_text('{"instruction": "Say hi.",\n')
    with pytest.raises(InputError, match="changed since it was exported"):
        read_export(broken)
    with pytest.raises(InputError, match="no manifest.json"):
        read_export(tmp_path)
    with pytest.raises(InputError, match="no such export folder"):
        read_export(tmp_path / "nowhere")


def test_encode_masks_the_prompt_and_cuts_only_the_response(tiny_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    row = SFTRow("sw", "Describe the city.", "Dar es Salaam ni mji mkubwa.")
    ex = encode_sft(tok, row, 512)
    prompt = tok(row.prompt).input_ids
    target = tok(row.response, add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert ex.input_ids == prompt + target and ex.labels == [-100] * len(prompt) + target
    assert "Answer in Swahili." in tok.decode(prompt)
    long = SFTRow("fi", "Summarize.", "Suomessa on paljon järviä. " * 40)
    long_prompt = len(tok(long.prompt).input_ids)
    cut = encode_sft(tok, long, long_prompt + 20)
    assert len(cut.input_ids) == long_prompt + 20 and cut.input_ids[-1] != tok.eos_token_id
    assert sum(x != -100 for x in cut.labels) == 20
    with pytest.raises(ConfigError, match="max_tokens 40 is too small"):
        encode_sft(tok, long, 40)


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------
def test_lora_training_registers_an_instruct_version_with_the_export_hash(store, tiny_lm, export_dir, models_dir):
    from safetensors.torch import load_file

    manifest = json.loads((export_dir / "manifest.json").read_text())
    name = train_instruct(store, tiny_cfg(tiny_lm, export_dir, name="tiny-instruct", langs=["sw"]))
    folder = models_dir / name
    weights = load_file(str(folder / "adapter_model.safetensors"))
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    with store.session() as tx:
        row = tx.dicts("SELECT * FROM model_versions WHERE name = ?", [name])[0]
    metrics = json.loads(row["metrics"])
    assert (row["kind"], row["data_hash"], row["steps"]) == ("instruct", manifest["content_hash"], 1)
    assert (metrics["export_rows"], metrics["pairs"], metrics["per_lang"], metrics["method"]) == (4, 2, {"sw": 2}, "lora")
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["task"] == "instruct" and meta["final_loss"] > 0 and meta["template"] == "alpaca-v1"
    with pytest.raises(XInstructError, match="already exists"):
        train_instruct(store, tiny_cfg(tiny_lm, export_dir, name="tiny-instruct"))
    with pytest.raises(XInstructError, match="no rows in ta"):
        train_instruct(store, tiny_cfg(tiny_lm, export_dir, name="other", langs=["ta"]))


def test_the_loss_counts_response_tokens_only(tiny_lm):
    """The training loss of a padded batch equals the mean log-loss of the response tokens computed by hand, row by
    row without padding: left padding, position ids and the logits kept only at the end change nothing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xinstruct.train import collate, target_loss

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_lm)).eval()
    examples = [encode_sft(tok, SFTRow("sw", "Describe the city.", "Dar es Salaam ni mji mkubwa."), 512),
                encode_sft(tok, SFTRow("fi", "Explain in detail what Helsinki is known for and why people visit it.",
                                       "Helsinki."), 512)]
    assert len(examples[0].input_ids) != len(examples[1].input_ids)
    total, count = 0.0, 0
    with torch.no_grad():
        loss = target_loss(model, collate(examples, tok.pad_token_id))
        for ex in examples:
            logp = torch.log_softmax(model(input_ids=torch.tensor([ex.input_ids])).logits[0, :-1], -1)
            for t, label in enumerate(ex.labels[1:]):
                if label != -100:
                    total, count = total - float(logp[t, label]), count + 1
    assert count == sum(x != -100 for ex in examples for x in ex.labels)
    assert abs(float(loss) - total / count) < 1e-4

    class NoLogitsToKeep(torch.nn.Module):  # a model class whose forward has no logits_to_keep (remote code)
        def forward(self, input_ids, attention_mask, position_ids):
            return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)

    with torch.no_grad():
        assert abs(float(target_loss(NoLogitsToKeep(), collate(examples, tok.pad_token_id))) - total / count) < 1e-4


def test_cli_full_fine_tune_then_answer_and_resume(file_store, tiny_lm, export_dir, models_dir, tmp_path):
    db = str(file_store.path)
    file_store.close()
    result = runner.invoke(app, ["train", "instruct", "--export", str(export_dir), "--base", str(tiny_lm), "--name",
                                 "tiny-full", "--full", "--max-steps", "1", "--batch-size", "2", "--grad-accum", "1",
                                 "--device", "cpu", "--db", db])
    assert result.exit_code == 0, result.output
    assert "trained tiny-full: 1 steps" in result.output and (models_dir / "tiny-full" / "tokenizer.json").exists()
    questions = write_jsonl(tmp_path / "vicuna.jsonl", QUESTIONS)
    args = ["eval", "answer", "--model", "tiny-full", "--questions", str(questions), "--lang", "sw,fi",
            "--max-new-tokens", "3", "--batch-size", "2", "--device", "cpu", "--db", db]
    first = runner.invoke(app, [*args, "--limit", "2"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    from xinstruct.store import Store

    store = Store(db)
    stored = answers(store, "tiny-full")
    assert len(stored) == 6 and {a.lang for a in stored} == {"sw", "fi"}
    assert stored[0].question_set == question_set_name(questions)
    table = [r.split()[:3] for r in again.output.splitlines() if r.startswith(("sw ", "fi "))]
    assert table == [["sw", "3", "2"], ["fi", "3", "2"]]  # lang, questions, skipped
    a = next(x for x in stored if x.lang == "fi" and x.question_id == "3")
    assert a.question == "What is the capital of Tanzania?" and "Tanzania? Answer in Finnish.\n\n### Response:\n" in a.prompt
    assert a.sampling["max_new_tokens"] == 3 and a.finish_reason in ("stop", "length") and a.seconds is not None


# ---------------------------------------------------------------------------------------------------------------------
# Answering: shapes, resuming, errors
# ---------------------------------------------------------------------------------------------------------------------
class ScriptedModel:
    """Answers 'answer to <question id position>'; the n-th call's prompts are kept."""

    name = "scripted"

    def __init__(self, n_tokens: int = 2):
        self.calls: list[list[str]] = []
        self.n_tokens = n_tokens

    def generate(self, prompts, params):
        self.calls.append(list(prompts))
        return [Generation(f" answer {len(self.calls)}.{i} ", n_tokens=self.n_tokens) for i in range(len(prompts))]


def test_question_shapes_of_the_benchmark_files(tmp_path):
    rows = [
        {"id": 0, "instruction": "Name three famous actors.", "lang": "en"},
        {"question_id": 81, "turns": ["Compose a travel blog post.", "Rewrite it."]},
        {"idx": 1, "Instruction": "If a car travels 120 miles in 2 hours, what is its speed?"},
        {"id": "user_oriented_task_0", "instruction": "Rewrite the sentence more concisely.",
         "instances": [{"input": "If you have any questions, let me know.", "output": "..."}]},
        {"lang": "sw", "question_translated": "Ni mambo gani yanayoathiri tabia ya mnunuzi?"},
        {"lang": "es", "question_translated": "¿Cuáles son los factores principales?"},
        {"question": "What is love?", "id": "q7"},
    ]
    qs = read_questions(write_jsonl(tmp_path / "q.jsonl", rows))
    assert [q.id for q in qs] == ["0", "81", "1", "user_oriented_task_0", "line5", "line6", "q7"]
    assert qs[1].text == "Compose a travel blog post." and qs[3].input.startswith("If you have")
    sw = questions_for(qs, "sw")
    assert [q.id for q in sw] == ["0", "81", "1", "user_oriented_task_0", "line5", "q7"]  # Spanish row: never
    assert sw[4].prompt("sw").count("Answer in") == 0 and "Ni mambo gani" in sw[4].prompt("sw")
    assert sw[0].prompt("sw").endswith("Name three famous actors. Answer in Swahili.\n\n### Response:\n")
    assert "### Input:\nIf you have any questions, let me know." in sw[3].prompt("sw")
    assert [q.id for q in questions_for(qs, "fi")] == ["0", "81", "1", "user_oriented_task_0", "q7"]


def test_every_shared_eval_file_reads(shared_data):
    for path in sorted((shared_data / "eval").glob("*.jsonl")):
        qs = read_questions(path)
        assert qs and len({q.id for q in qs}) == len(qs), path
    assert len(read_questions(shared_data / "eval" / "vicuna80_questions.jsonl")) == 80


def test_answers_are_stored_batched_and_a_rerun_skips_answered_ids(store, tmp_path):
    questions = write_jsonl(tmp_path / "vicuna.jsonl", QUESTIONS + [
        {"lang": "sw", "question_translated": "Habari gani?"}])
    model = ScriptedModel()
    cfg = AnswerConfig(model="scripted", questions=str(questions), langs=["sw", "id"], limit=2, batch_size=2,
                       max_new_tokens=2, progress=False)
    first = answer_questions(store, cfg, model=model)
    assert {k: v["answered"] for k, v in first["langs"].items()} == {"sw": 2, "id": 2} and len(model.calls) == 2
    qset = question_set_name(questions)
    assert answered_ids(store, "scripted", qset, "sw") == {"1", "2"}
    cfg.limit = None
    second = answer_questions(store, cfg, model=model)
    assert second["langs"]["sw"] == {"questions": 4, "skipped": 2, "answered": 2, "truncated": 2,
                                     "seconds": second["langs"]["sw"]["seconds"]}
    assert second["langs"]["id"]["answered"] == 1  # the Swahili question is not asked in Indonesian
    assert answer_questions(store, cfg, model=model)["langs"]["sw"]["answered"] == 0 and len(model.calls) == 4
    stored = answers(store, "scripted", lang="sw")
    assert [a.question_id for a in stored] == ["1", "2", "3", "line4"]
    assert {a.finish_reason for a in stored} == {"length"} and stored[0].answer == "answer 1.0"
    assert stored[0].sampling["stop"] == ["### Instruction:"] and stored[0].sampling["temperature"] == 0.0
    native = next(a for a in stored if a.question_id == "line4")
    assert "Habari gani?\n\n### Response:\n" in native.prompt and "Answer in" not in native.prompt
    short = ScriptedModel(n_tokens=1)
    short.name = "short"
    answer_questions(store, AnswerConfig(model="x", questions=str(questions), langs=["fi"], limit=1, max_new_tokens=2,
                                         progress=False), model=short)
    assert answers(store, "scripted", lang="fi") == [] and answers(store, "scripted", lang="id")
    assert [a.finish_reason for a in answers(store, short.name, lang="fi")] == ["stop"]


@pytest.mark.parametrize("lines, message", [
    (['{"id": 1, "question": "Hi?"}', '{"id": 2, "question": '], r"q.jsonl:2: not valid JSON"),
    (['{"id": 1, "text": "Hi?"}'], r"q.jsonl:1: no question field \(keys: id, text\)"),
    (['{"id": 1, "question": "Hi?"}', '{"id": 1, "question": "Ho?"}'], r"q.jsonl:2: id '1' also on line 1"),
    (['{"question_id": 5, "turns": []}'], r"q.jsonl:1: turns must be a non-empty list"),
    (['{"id": 1, "question": "   "}'], r"q.jsonl:1: question is empty"),
    (['[1, 2]'], r"q.jsonl:1: expected a JSON object"),
    (['', '  '], r"q.jsonl: no questions in the file"),
    (['{"id": 1, "question": "Hi?", "lang": 3}'], r"q.jsonl:1: lang must be a language code"),
])
def test_bad_question_files_say_where_and_what_to_do(tmp_path, lines, message):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        read_questions(path)
    assert "(" in str(err.value) and str(err.value).endswith(")")  # a hint follows


def test_wrong_language_missing_file_and_bad_options_are_refused(store, tmp_path):
    only_es = write_jsonl(tmp_path / "es.jsonl", [{"lang": "es", "question_translated": "¿Qué?"}])
    model = ScriptedModel()
    with pytest.raises(InputError, match="no questions for sw: the file has only questions in es"):
        answer_questions(store, AnswerConfig(model="x", questions=str(only_es), langs=["sw"], progress=False), model=model)
    with pytest.raises(InputError, match="no such question file"):
        answer_questions(store, AnswerConfig(model="x", questions=str(tmp_path / "none.jsonl"), langs=["sw"]), model=model)
    with pytest.raises(InputError, match="unknown language code 'xx'"):
        answer_questions(store, AnswerConfig(model="x", questions=str(only_es), langs=["xx"]), model=model)
    english = write_jsonl(tmp_path / "en.jsonl", [{"id": 1, "question": "Why is the sky blue?"}])
    with pytest.raises(ConfigError, match="unknown answer backend 'llama'"):
        answer_questions(store, AnswerConfig(model="x", questions=str(english), langs=["sw"], backend="llama"),
                         model=model)
    with pytest.raises(ConfigError, match="not the embedded base"):  # vLLM serves tuned versions and folders
        answer_questions(store, AnswerConfig(model="embedded", questions=str(english), langs=["sw"], backend="vllm",
                                             progress=False))
    (tmp_path / "bin.jsonl").write_bytes(b'{"question": "\xff"}\n')
    with pytest.raises(InputError, match="bin.jsonl:1: not UTF-8"):
        read_questions(tmp_path / "bin.jsonl")
    assert model.calls == []


def test_cli_errors_are_one_clear_line(file_store, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    db = str(file_store.path)
    file_store.close()
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": 1, "question": "Hi?"}\n{"id": 2}\n')
    proc = subprocess.run([sys.executable, "-c", "from xinstruct.cli import main; main()", "eval", "answer", "--model",
                           "embedded", "--questions", str(bad), "--lang", "sw", "--db", db], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {bad}:2: no question field"), proc.stderr
    missing = runner.invoke(app, ["train", "instruct", "--export", str(tmp_path / "none"), "--db", db])
    assert missing.exit_code != 0 and "no such export folder" in str(missing.exception)


@pytest.mark.slow
def test_the_embedded_base_answers_two_questions(file_store, tmp_path):
    """The untuned embedded base is the natural baseline: `--model embedded` loads Gemma 3 270M without any adapter."""
    questions = write_jsonl(tmp_path / "vicuna.jsonl", QUESTIONS[:2])
    result = answer_questions(file_store, AnswerConfig(model="embedded", questions=str(questions), langs=["sw"],
                                                       max_new_tokens=8, device="cpu", progress=False))
    assert result["model"] == "gemma3-270m" and result["langs"]["sw"]["answered"] == 2
    stored = answers(file_store, "gemma3-270m", lang="sw")
    assert len(stored) == 2 and all(a.answer for a in stored) and stored[0].sampling["backend"] == "TransformersModel"


def test_the_demo_questions_are_ours_in_every_language():
    """The demo's question file (written by us, never a third party's) asks something in each of the ten languages
    and in English, and every question reads as a prompt for each language."""
    from pathlib import Path

    import xinstruct
    from xinstruct.langs import LANGS

    path = Path(xinstruct.__file__).parent / "data" / "questions" / "demo.jsonl"
    questions = read_questions(path)
    assert len({q.id for q in questions}) == len(questions)
    for lang in LANGS:
        mine = questions_for(questions, lang)
        assert any(q.lang == lang for q in mine), f"no question written in {lang}"
        assert all(q.prompt(lang).rstrip().endswith("### Response:") for q in mine)
