"""Backward-model training on a tiny random-weight model: one step, what is saved and registered, loading it back."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl
from test_models import build_tiny_lm

from xinstruct.errors import ConfigError, XInstructError
from xinstruct.generate import GenerateConfig, run
from xinstruct.models.hf import TransformersModel
from xinstruct.seed import SeedPair
from xinstruct.train import TrainConfig, encode_example, train_generator

PAIRS = [
    {"lang": "sw", "instruction": "Describe the city of Dar es Salaam.",
     "response": "Dar es Salaam ni mji mkubwa zaidi nchini Tanzania na una bandari muhimu."},
    {"lang": "sw", "instruction": "Write about Mount Kilimanjaro.",
     "response": "Mlima Kilimanjaro ndio mlima mrefu zaidi barani Afrika."},
    {"lang": "fi", "instruction": "Explain what Helsinki is known for.",
     "response": "Helsinki on Suomen pääkaupunki ja sen suurin kaupunki."},
    {"lang": "fi", "instruction": "Summarize the text about Finnish lakes.", "response": "Suomessa on paljon järviä. " * 40},
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-train"))


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XINSTRUCT_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture
def seed_file(tmp_path):
    return write_jsonl(tmp_path / "seed.jsonl", PAIRS)


def tiny_config(tiny_lm, seed_file, **kw) -> TrainConfig:
    defaults = dict(seed_files=[str(seed_file)], base=str(tiny_lm), max_steps=1, batch_size=2, grad_accum=1,
                    max_tokens=96, lr=1e-2, progress=False, device="cpu")
    return TrainConfig(**{**defaults, **kw})


def test_encode_example_labels_only_the_instruction_and_cuts_only_the_text(tiny_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    pair = SeedPair("x", "fi", PAIRS[3]["instruction"], PAIRS[3]["response"])
    ex = encode_example(tok, pair, max_tokens=96)
    target = tok(pair.instruction, add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert 90 <= len(ex.input_ids) <= 96 and len(ex.input_ids) == len(ex.labels)
    assert ex.labels[-len(target):] == target and ex.input_ids[-len(target):] == target
    assert set(ex.labels[: -len(target)]) == {-100}
    prompt = tok.decode(ex.input_ids[: -len(target)], skip_special_tokens=True)
    assert prompt.startswith("Below is a text") and prompt.endswith("### English Instruction:\n")
    with pytest.raises(ConfigError, match="max_tokens 40 is too small"):
        encode_example(tok, pair, max_tokens=40)


def test_one_lora_step_changes_the_adapter_logs_a_loss_and_registers(store, tiny_lm, seed_file, models_dir):
    from safetensors.torch import load_file

    name = train_generator(store, tiny_config(tiny_lm, seed_file, name="tiny-backward"))
    folder = models_dir / "tiny-backward"
    assert name == "tiny-backward" and (folder / "adapter_config.json").exists()
    weights = load_file(str(folder / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # LoRA B starts at zero: every one moved
    meta = json.loads((folder / "metadata.json").read_text())
    assert (meta["task"], meta["base"], meta["steps"], meta["method"], meta["pairs"]) == ("backward", str(tiny_lm), 1, "lora", 4)
    assert len(meta["losses"]) == 1 and meta["final_loss"] > 0 and meta["data_hash"] and meta["created"]
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_lm)
    with store.session() as tx:
        row = tx.dicts("SELECT * FROM model_versions WHERE name = ?", [name])[0]
    assert (row["kind"], row["base"], row["steps"], row["path"]) == ("generator", str(tiny_lm), 1, str(folder.resolve()))

    model = TransformersModel.load(name, store=store, device="cpu")
    assert model.name == name and model.backward


def test_generate_uses_a_trained_version_by_name_without_examples(store, tiny_lm, seed_file, models_dir):
    name = train_generator(store, tiny_config(tiny_lm, seed_file, name="tiny-gen"))
    store.write(lambda tx: tx.execute(
        "INSERT INTO documents (id, content_hash, text, lang, status) VALUES ('d1', 'd1', ?, 'sw', 'kept')",
        [PAIRS[0]["response"]]))
    stats = run(store, GenerateConfig(model=name, max_new_tokens=4, progress=False, device="cpu"))
    assert (stats["generated"], stats["model"], stats["few_shot"]) == (1, "tiny-gen", 0)


def test_full_fine_tune_changes_every_weight_and_saves_the_tokenizer(store, tiny_lm, seed_file, models_dir):
    from safetensors.torch import load_file

    train_generator(store, tiny_config(tiny_lm, seed_file, lora=False, name="tiny-full"))
    folder = models_dir / "tiny-full"
    before, after = load_file(str(tiny_lm / "model.safetensors")), load_file(str(folder / "model.safetensors"))
    unchanged = [k for k in before if k in after and (before[k] == after[k]).all()]
    assert not unchanged and (folder / "tokenizer.json").exists()
    assert TransformersModel.load("tiny-full", store=store, device="cpu").backward


def test_fp16_adapter_is_half_size_and_loads(store, tiny_lm, seed_file, models_dir):
    import torch
    from safetensors.torch import load_file

    train_generator(store, tiny_config(tiny_lm, seed_file, fp16=True, name="tiny-half"))
    weights = load_file(str(models_dir / "tiny-half" / "adapter_model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.float16}
    model = TransformersModel.load("tiny-half", store=store, device="cpu")
    assert next(model.model.parameters()).dtype == torch.float32


def test_holdout_and_language_filter_reduce_the_training_pairs(store, tiny_lm, seed_file, models_dir):
    name = train_generator(store, tiny_config(tiny_lm, seed_file, langs=["fi"], holdout_every=2, name="tiny-fi"))
    meta = json.loads((models_dir / name / "metadata.json").read_text())
    assert (meta["pairs"], meta["heldout_pairs"], meta["langs"]) == (1, 1, ["fi"])


def test_an_existing_name_is_refused(store, tiny_lm, seed_file, models_dir):
    train_generator(store, tiny_config(tiny_lm, seed_file, name="taken"))
    with pytest.raises(XInstructError, match="'taken' already exists"):
        train_generator(store, tiny_config(tiny_lm, seed_file, name="taken"))


def test_cli_train_generator(file_store, tiny_lm, seed_file, models_dir):
    from typer.testing import CliRunner

    from xinstruct.cli import app

    result = CliRunner().invoke(app, ["train", "generator", "--seed", str(seed_file), "--base", str(tiny_lm),
                                      "--max-steps", "1", "--name", "cli-tiny", "--device", "cpu",
                                      "--db", str(file_store.path)])
    assert result.exit_code == 0, result.output
    assert "trained cli-tiny: 1 steps" in result.output and "xinstruct generate --model cli-tiny" in result.output
