"""`xinstruct run`: config validation and the whole pipeline with a fake model, resumed without duplicates."""

from __future__ import annotations

import pytest
import yaml

from test_diversify import TopicEmbedder
from xinstruct.errors import ConfigError, InputError
from xinstruct.models.fake import FakeModel
from xinstruct.pipeline import PipelineConfig, load_config, run, stage_configs


def write(tmp_path, data) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("data, message", [
    ({"langauges": ["sw"]}, "unknown key(s) langauges"),
    ({"languages": ["xx"]}, "unknown language code 'xx'"),
    ({"stages": ["ingest", "train"]}, "unknown stage(s) train"),
    ({"refine": {"rounds": "three"}}, "refine.rounds"),
    ({"diversify": {"targt": 5}}, "unknown key(s) targt"),
    ({"diversify": {"target": 0}}, "diversify: target must be at least 1 (got 0)"),
    ({"refine": {"rounds": -1}}, "refine: rounds must be 0 (label only) or more (got -1)"),
    ({"generate": {"batch_size": 0}}, "generate: batch_size must be at least 1"),
    ({"ingest": {"min_chars": 500, "max_chars": 100}}, "ingest: max_chars (100) must be above min_chars (500)"),
])
def test_config_errors_name_the_key_and_list_valid_ones(tmp_path, data, message):
    with pytest.raises((ConfigError, InputError), match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg, _ = load_config(write(tmp_path, data))
        stage_configs(cfg)


def test_unknown_key_error_lists_help_text(tmp_path):
    with pytest.raises(ConfigError, match="rounds \\(default 0\\): rewrite rounds after labelling"):
        stage_configs(PipelineConfig(refine={"roundz": 1}))


def test_whole_pipeline_with_fake_model_then_resume_adds_nothing(store, tmp_path):
    corpus = tmp_path / "sw.jsonl"
    from test_ingest import SW

    corpus.write_text("".join(f'{{"text": "{t}"}}\n' for t in SW), encoding="utf-8")
    cfg, base = load_config(write(tmp_path, {
        "languages": ["sw"], "inputs": ["sw.jsonl"],
        "ingest": {"lang": "sw"}, "generate": {"batch_size": 1}, "diversify": {"target": 1},
        "refine": {"evaluator": "gain"}}))  # scripted likelihoods: the gain score labels them predictably
    model = FakeModel(generate_fn=lambda p: "Explain how this food is cooked.",
                      loglik_fn=lambda p, c: -2.0 if p else -3.0)
    summary = run(store, cfg, base, model=model, evaluator=model, embedder=TopicEmbedder(), progress=False,
                  echo=lambda s: None)
    assert list(summary) == ["ingest", "generate", "refine", "diversify"]
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM candidates WHERE label = 'good'") == 2
        assert tx.scalar("SELECT count(*) FROM candidates WHERE selected") == 1
    run(store, cfg, base, model=model, evaluator=model, embedder=TopicEmbedder(), progress=False, echo=lambda s: None)
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM candidates") == 2
        assert tx.scalar("SELECT count(*) FROM documents") == 2
