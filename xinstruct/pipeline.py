"""`xinstruct run`: ingest -> generate -> refine -> diversify for the chosen languages, from one YAML file.

Every stage skips the work that is already stored, so rerunning the same config after a crash or Ctrl-C resumes where
it stopped. What is stored is the only record of progress: there is no separate "stage done" marker that could disagree
with it (a stage "done" yesterday has new work after today's ingest); the summary of a run is printed, not stored.
Example config (every key optional; unknown keys are errors):

    languages: [sw, ur]
    inputs: [corpus/sw.jsonl, corpus/ur.jsonl]   # relative to the config file
    stages: [ingest, generate, refine, diversify]
    ingest: {min_chars: 300}
    generate: {limit: 100, batch_size: 8}       # limit: documents per language
    refine: {rounds: 3}
    diversify: {target: 50}
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import diversify, ingest, refine
from .config import from_dict
from .errors import ConfigError
from .langs import check_lang
from .store import Store, to_json

STAGES = ("ingest", "generate", "refine", "diversify")


@dataclass
class PipelineConfig:
    """What `xinstruct run` does."""

    languages: list[str] = field(default_factory=list)  # languages to process; empty = every language in the store
    inputs: list[str] = field(default_factory=list)  # files or folders to ingest (relative to the config file); "demo" = the bundled demo corpus
    stages: list[str] = field(default_factory=lambda: list(STAGES))  # stages to run, in pipeline order
    ingest: dict = field(default_factory=dict)  # IngestConfig fields
    generate: dict = field(default_factory=dict)  # GenerateConfig fields
    refine: dict = field(default_factory=dict)  # RefineConfig fields
    diversify: dict = field(default_factory=dict)  # DiversifyConfig fields

    def validate(self) -> None:
        """Stage names and languages (the stage sections are checked by `stage_configs`, before anything runs)."""
        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            raise ConfigError(f"unknown stage(s) {', '.join(bad)}; stages are {', '.join(STAGES)}")
        self.languages = [check_lang(lang) for lang in self.languages]


def load_config(path: str | Path | None) -> tuple[PipelineConfig, Path]:
    """Read and validate a pipeline YAML (None: defaults). Returns the config and the folder inputs are relative to."""
    import yaml

    if path is None:
        return PipelineConfig(), Path.cwd()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (languages, inputs, stages, ...)")
    for lang in data.get("languages") or []:  # named with the file (the check in validate() cannot say which)
        check_lang(lang, path=str(path))
    return from_dict(PipelineConfig, data, str(path)), path.parent


def stage_configs(cfg: PipelineConfig, where: str = "config") -> dict[str, Any]:
    """Build and validate every stage's config before anything runs (so a typo fails in a second, not an hour in)."""
    from .generate import GenerateConfig

    return {
        "ingest": from_dict(ingest.IngestConfig, cfg.ingest, f"{where}: ingest"),
        "generate": from_dict(GenerateConfig, cfg.generate, f"{where}: generate"),
        "refine": from_dict(refine.RefineConfig, cfg.refine, f"{where}: refine"),
        "diversify": from_dict(diversify.DiversifyConfig, cfg.diversify, f"{where}: diversify"),
    }


def resolve_inputs(inputs: list[str], base: Path) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(__file__).parent / "data" / "demo" if item == "demo" else (base / item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")))
        else:
            files.append(path)
    return files


def run(store: Store, cfg: PipelineConfig, base: Path, *, model=None, evaluator=None, embedder=None,
        progress: bool = True, echo=print) -> dict[str, Any]:
    """Run the configured stages in order; returns per-stage stats and timings.

    `model` generates (and writes refinement rewrites), `evaluator` scores; both are loaded from the stage configs
    when not given (the evaluator defaults to the bare embedded base model, see refine.load_evaluator)."""
    from . import generate

    configs = stage_configs(cfg)
    for c in configs.values():
        if hasattr(c, "progress"):
            c.progress = progress
    summary: dict[str, Any] = {}
    languages = cfg.languages or [None]
    for stage in [s for s in STAGES if s in cfg.stages]:
        start = time.monotonic()
        echo(f"== {stage}")
        if stage == "ingest":
            files = resolve_inputs(cfg.inputs, base)
            if not files:
                echo("   no inputs configured; skipped")
                continue
            result = ingest.ingest(store, files, configs["ingest"]).as_dict()
        else:
            result = {}
            for lang in languages:
                stage_cfg = replace(configs[stage], lang=lang)
                if stage == "generate":
                    if model is None:
                        model = generate.load_generator(stage_cfg, store)
                    result[lang or "all"] = generate.run(store, stage_cfg, model=model)
                elif stage == "refine":
                    if evaluator is None:
                        evaluator = refine.load_evaluator(stage_cfg)
                    result[lang or "all"] = refine.run(store, stage_cfg, model=evaluator, refiner=model)
                else:
                    result.update(diversify.run(store, stage_cfg, embedder=embedder))
        seconds = round(time.monotonic() - start, 1)
        summary[stage] = {"seconds": seconds, **({"result": result} if result else {})}
        echo(f"   {stage} done in {seconds} s: {to_json(result)[:400]}")
    return summary
