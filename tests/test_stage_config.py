"""Stage configs validate every field (enumerated ones against their allowed values), from YAML, from Python and from
the command line alike; the command line takes its defaults, help and ranges from the config dataclasses."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import typer.main
import yaml
from conftest import ROOT
from typer.testing import CliRunner

from xinstruct import diversify, generate, ingest, pipeline, refine
from xinstruct.cli import app
from xinstruct.config import default_of, describe, field_help
from xinstruct.errors import ConfigError

runner = CliRunner()
STAGE_COMMANDS = {"ingest": ingest.IngestConfig, "generate": generate.GenerateConfig, "refine": refine.RefineConfig,
                  "diversify": diversify.DiversifyConfig}


def _yaml(tmp_path, data) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("section, key, value, message", [
    ("diversify", "algorithm", "kmean", "unknown algorithm 'kmean'; use one of kmeans, minibatch, auto"),
    ("refine", "judge", "txt", "unknown judge 'txt'; use one of probs, text"),
    ("refine", "evaluator", "trainde", "unknown evaluator 'trainde'; use one of trained, gain"),
    ("refine", "backend", "magic", "unknown backend 'magic'; use one of embedded, transformers, vllm, llamacpp, fake"),
    ("generate", "backend", "vlm", "unknown backend 'vlm'; use one of embedded"),
    ("generate", "distributed_backend", "rey", "unknown distributed_backend 'rey'; use one of ray, mp"),
    ("generate", "top_p", 0, "top_p must be in (0, 1] (got 0)"),
    ("generate", "sample_temperature", 0, "sample_temperature must be above 0 (got 0)"),
    ("ingest", "near_dup_threshold", 1.5, "near_dup_threshold must be in (0, 1] (got 1.5)"),
    ("refine", "good_at", 2, "good_at must be in [0, 1] (got 2)"),
    ("refine", "lang", "xx", "unknown language code 'xx'"),
    ("diversify", "seed", -1, "seed must be in [0, 4294967295] (got -1)"),
    ("diversify", "distance_weight", float("nan"), "distance_weight must be 0 or more (got nan)"),
])
def test_a_bad_value_in_a_pipeline_yaml_names_the_field_the_value_and_what_is_allowed(tmp_path, section, key, value,
                                                                                      message):
    cfg, _ = pipeline.load_config(_yaml(tmp_path, {section: {key: value}}))
    with pytest.raises(Exception, match=r"(?s)" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")) as err:
        pipeline.stage_configs(cfg)
    assert isinstance(err.value, ConfigError) or "language" in message


def test_a_bad_value_in_python_is_refused_before_the_stage_runs(store):
    with pytest.raises(ConfigError, match="unknown algorithm 'kmean'"):
        diversify.run(store, diversify.DiversifyConfig(algorithm="kmean"))
    with pytest.raises(ConfigError, match="unknown judge 'txt'"):
        refine.run(store, refine.RefineConfig(judge="txt"))
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        refine.RefineConfig(batch_size="8").validate()
    # the clustering function itself no longer falls back to k-means on a typo
    with pytest.raises(ConfigError, match="unknown algorithm 'minibatches'"):
        diversify.cluster(np.eye(3, dtype=np.float32), 2, algorithm="minibatches")


def test_explain_lists_the_allowed_values_and_ranges():
    text = describe(diversify.DiversifyConfig)
    assert "algorithm (default 'auto'): kmeans | minibatch | auto" in text
    assert "[one of kmeans, minibatch, auto]" in text and "[at least 1]" in text
    assert "rounds (default 0): rewrite rounds after labelling" in describe(refine.RefineConfig)


@pytest.mark.parametrize("args, message", [
    (["diversify", "--algorithm", "kmean"], "Invalid value for '--algorithm'"),
    (["refine", "--judge", "txt"], "Invalid value for '--judge'"),
    (["refine", "--evaluator", "trainde"], "Invalid value for '--evaluator'"),
    (["generate", "--backend", "vlm"], "Invalid value for '--backend'"),
])
def test_a_bad_choice_on_the_command_line_is_refused_with_the_choices(args, message, tmp_path):
    result = runner.invoke(app, [*args, "--db", str(tmp_path / "none.duckdb")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and message in text, text
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_stage_on_the_command_line_is_an_error_not_a_skipped_stage(tmp_path):
    result = subprocess.run([sys.executable, "-c", "from xinstruct.cli import main; main()", "run", "--stage", "ingst",
                             "--db", str(tmp_path / "x.duckdb")], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "unknown stage(s) ingst; stages are ingest, generate" in result.stderr
    assert not (tmp_path / "x.duckdb").exists()


def _options(name: str) -> dict[str, object]:
    """field name -> click parameter of a stage command."""
    cmd = typer.main.get_command(app).commands[name]
    return {p.name: p for p in cmd.params}


@pytest.mark.parametrize("command", sorted(STAGE_COMMANDS))
def test_the_command_line_defaults_and_help_are_the_config_dataclass_ones(command):
    """So they cannot drift again: every option named like a config field has the field's default, help and range."""
    cls = STAGE_COMMANDS[command]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    options = {name: p for name, p in _options(command).items() if name in fields}
    assert len(options) >= 5
    for name, param in options.items():
        default = default_of(fields[name])
        assert param.default == (None if isinstance(default, list) else default), name
        assert param.help.rstrip(".") == field_help(cls)[name].rstrip("."), name
        meta = fields[name].metadata
        lo = meta.get("cli_min") if meta.get("cli_min") is not None else meta.get("min")
        if lo is not None:
            holder = param.type if hasattr(getattr(param, "type", None), "min") else param
            assert getattr(holder, "min", None) == lo, name


@pytest.mark.parametrize("command", ["generate", "refine", "diversify"])
def test_a_command_without_options_runs_the_stage_with_the_config_defaults(command, file_store, monkeypatch):
    module = {"generate": generate, "refine": refine, "diversify": diversify}[command]
    seen = []
    monkeypatch.setattr(module, "run", lambda store, cfg, *a, **k: seen.append(cfg) or _stats(command))
    file_store.close()
    result = runner.invoke(app, [command, "--db", str(file_store.path)])
    assert result.exit_code == 0, result.output
    assert seen == [STAGE_COMMANDS[command]()]


def test_options_given_reach_the_config(file_store, monkeypatch):
    seen = []
    monkeypatch.setattr(generate, "run", lambda store, cfg, *a, **k: seen.append(cfg) or _stats("generate"))
    file_store.close()
    result = runner.invoke(app, ["generate", "--round", "2", "--seed", "a.jsonl", "--seed", "b.jsonl", "--batch-size",
                                 "3", "--backend", "fake", "--db", str(file_store.path)])
    assert result.exit_code == 0, result.output
    assert seen == [generate.GenerateConfig(round_id=2, seed_files=["a.jsonl", "b.jsonl"], batch_size=3,
                                            backend="fake")]


def test_ingest_without_options_uses_the_config_defaults(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(ingest, "ingest", lambda store, paths, cfg: seen.append(cfg) or ingest.IngestStats())
    result = runner.invoke(app, ["ingest", str(tmp_path / "a.jsonl"), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 0, result.output
    assert seen == [ingest.IngestConfig()]


def _stats(command: str) -> dict:
    return {"generate": {"pending": 0, "round": 1}, "refine": {"labelled": 0, "refined": 0, "rounds": 0, "labels": {}},
            "diversify": {}}[command]
