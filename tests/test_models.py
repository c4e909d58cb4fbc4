"""Model backends: the transformers backend on a tiny random-weight model built offline, resolution errors, optional
backends' error messages. No embedded model here (see test_embedded.py, marked slow)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from xinstruct.errors import XInstructError
from xinstruct.models.base import SamplingParams, load_model
from xinstruct.models.hf import TransformersModel, cut_at_stop, resolve_model

CORPUS = [
    "Write a short story about a village.",
    "Summarize the news about the election.",
    "Explain how photosynthesis works in plants.",
    "Dar es Salaam ni mji mkubwa zaidi nchini Tanzania.",
    "Helsinki on Suomen pääkaupunki ja sen suurin kaupunki.",
    "yes no good flawed bad",
    "Below is a text that describes a candidate output. Write an English instruction that can take the given text as an "
    "appropriate answer.\n\n### Text:\n\n\n### English Instruction:\n",
]


def build_tiny_lm(folder: Path) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on a few strings: any text encodes, nothing downloads."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 5, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         initializer_range=0.2, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_model(tiny_lm) -> TransformersModel:
    return TransformersModel.load(tiny_lm, device="cpu", batch_size=2)


PROMPTS = ["Write a short story", "Helsinki on Suomen", "Dar es Salaam ni mji mkubwa zaidi nchini", "yes"]


def test_generate_batched_with_left_padding_equals_one_at_a_time(tiny_model, tiny_lm):
    params = SamplingParams(max_new_tokens=8, stop=())
    batched = tiny_model.generate(PROMPTS, params)
    single = [tiny_model.generate([p], params)[0] for p in PROMPTS]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(0 < g.n_tokens <= 8 for g in batched)
    assert tiny_model.name == tiny_lm.name  # a folder's model is named after the folder


def test_stop_strings_cut_the_output(tiny_model):
    free = tiny_model.generate(PROMPTS, SamplingParams(max_new_tokens=12, stop=()))
    stops = tuple({g.text.strip()[1:3] for g in free if len(g.text.strip()) > 3})
    assert stops
    cut = tiny_model.generate(PROMPTS, SamplingParams(max_new_tokens=12, stop=stops))
    for f, c in zip(free, cut):
        assert f.text.startswith(c.text)
        assert not any(s in c.text.lstrip()[1:] for s in stops)


def test_sampling_is_reproducible_with_a_seed(tiny_model):
    params = SamplingParams(max_new_tokens=6, temperature=1.0, top_p=0.9, stop=(), seed=7)
    assert [g.text for g in tiny_model.generate(PROMPTS, params)] == [g.text for g in tiny_model.generate(PROMPTS, params)]


def test_label_probs_are_normalised_over_the_words(tiny_model):
    probs = tiny_model.label_probs(PROMPTS, ["good", "flawed", "bad"])
    assert len(probs) == len(PROMPTS)
    for p in probs:
        assert set(p) == {"good", "flawed", "bad"}
        assert math.isclose(sum(p.values()), 1.0, rel_tol=1e-6)
        assert all(0 <= v <= 1 for v in p.values())
    # batching (and its left padding) does not change a prompt's answer
    assert probs[1] == pytest.approx(tiny_model.label_probs([PROMPTS[1]], ["good", "flawed", "bad"])[0], rel=1e-4)


def test_loglik_is_finite_with_and_without_a_prompt(tiny_model):
    scores = tiny_model.loglik(["Write a short", "", "Helsinki on"], [" story about a village.", "Hello world", ""])
    assert all(math.isfinite(s) for s in scores)
    assert scores[0] < 0 and scores[1] < 0 and scores[2] == 0.0
    again = tiny_model.loglik(["Write a short"], [" story about a village."])[0]
    assert again == pytest.approx(scores[0], rel=1e-5)


def test_cut_at_stop_ignores_a_leading_stop():
    assert cut_at_stop("\nWrite a poem.\nMore", ["\n"]) == ("\nWrite a poem.", True)
    assert cut_at_stop("Write a poem.", ["\n"]) == ("Write a poem.", False)
    assert cut_at_stop("Write. ### Text: x", ["\n", "###"]) == ("Write. ", True)


def test_resolve_by_folder_registered_name_and_models_root(tiny_lm, store, tmp_path, monkeypatch):
    assert resolve_model(store, str(tiny_lm)).path == tiny_lm
    store.write(lambda tx: tx.execute(
        "INSERT INTO model_versions (name, kind, path) VALUES ('tiny-v1', 'generator', ?)", [str(tiny_lm)]))
    ref = resolve_model(store, "tiny-v1")
    assert (ref.name, ref.path, ref.backward) == ("tiny-v1", tiny_lm, False)
    monkeypatch.setenv("XINSTRUCT_MODELS", str(tiny_lm.parent))
    assert resolve_model(None, tiny_lm.name).path == tiny_lm


def test_unknown_model_and_bad_folders_are_clear_errors(store, tmp_path, monkeypatch):
    monkeypatch.setenv("XINSTRUCT_MODELS", str(tmp_path / "models"))
    with pytest.raises(XInstructError, match="unknown model 'nope'.*xinstruct train generator"):
        resolve_model(store, "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(XInstructError, match="neither config.json nor adapter_config.json"):
        resolve_model(store, str(tmp_path / "empty"))
    store.write(lambda tx: tx.execute(
        "INSERT INTO model_versions (name, kind, path) VALUES ('gone', 'generator', ?)", [str(tmp_path / "gone")]))
    with pytest.raises(XInstructError, match="registered at .* folder is missing"):
        resolve_model(store, "gone")
    with pytest.raises(XInstructError, match="no model given"):
        resolve_model(store, "")


def test_load_model_dispatches_to_transformers_and_fake(tiny_lm):
    assert isinstance(load_model(str(tiny_lm), device="cpu"), TransformersModel)
    assert load_model(backend="fake").name == "fake-1"


def test_optional_backends_fail_with_an_install_hint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(XInstructError, match=r"pip install 'xinstruct\[gpu\]'"):
        load_model("whatever", backend="vllm")
    with pytest.raises(XInstructError, match=r"pip install 'xinstruct\[llamacpp\]'"):
        load_model(None, backend="llamacpp")


def test_llamacpp_backend_only_generates():
    from xinstruct.models.llamacpp import LlamaCppModel

    model = LlamaCppModel(llm=None, name="gguf")
    with pytest.raises(XInstructError, match="only generates"):
        model.label_probs(["p"], ["good"])
    with pytest.raises(XInstructError, match="only generates"):
        model.loglik(["p"], ["c"])


def test_loglik_equals_full_vocabulary_log_softmax_when_projected_in_slices(tiny_model, monkeypatch):
    """The bounded-memory scorer (vocabulary projection at the continuation's positions only, in slices) gives what
    log_softmax over the whole sequence gives; slices of 3 positions change nothing."""
    import torch

    from xinstruct.models import hf

    prompt, cont = "Write a short", " story about a village by the sea."
    p, c = hf.split_ids(tiny_model.tokenizer, prompt, cont)
    ids = torch.tensor([p + c])
    with torch.inference_mode():
        logp = torch.log_softmax(tiny_model.model(input_ids=ids).logits.float()[0, :-1], dim=-1)
    reference = float(logp[len(p) - 1 :].gather(-1, ids[0, len(p) :, None]).mean())
    monkeypatch.setattr(hf, "LOGIT_ROWS", 3)
    (mean, pooled), (_, none) = tiny_model.score([prompt, "Hi"], [cont, " there"], pool=True)[0], \
        tiny_model.score([prompt], [cont])[0]
    assert mean == pytest.approx(reference, abs=1e-4)
    assert pooled.shape == (tiny_model.model.config.hidden_size,) and none is None


def test_models_root_is_beside_the_store_the_command_was_given(tmp_path, monkeypatch):
    """Weights trained for a store go under `models/` beside that store's file (the --db given), not beside
    $XINSTRUCT_DB; $XINSTRUCT_MODELS still overrides; an in-memory store uses the default folder."""
    from xinstruct.models.hf import models_root
    from xinstruct.store import Store

    monkeypatch.delenv("XINSTRUCT_MODELS", raising=False)
    monkeypatch.setenv("XINSTRUCT_DB", str(tmp_path / "env" / "env.duckdb"))
    given = Store(tmp_path / "given" / "x.duckdb")
    assert models_root(given) == (tmp_path / "given" / "models").resolve()
    assert models_root() == tmp_path / "env" / "models"
    assert models_root(Store(":memory:")) == tmp_path / "env" / "models"
    monkeypatch.setenv("XINSTRUCT_MODELS", str(tmp_path / "m"))
    assert models_root(given) == tmp_path / "m"
