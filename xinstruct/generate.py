"""Stage 1, generation: write an English instruction for every kept native document.

For each kept document of the chosen language(s) that no round so far has used (a later round generates only for
documents no earlier round used), the generator model reads
the text (with few-shot seed pairs of the same language unless it is a trained backward model) and writes an
instruction; the parser keeps it or rejects it with a reason. Documents are processed in batches: the model runs outside
any store session, and each batch is written in one transaction (candidates + their first version). Candidate ids are
hashes of (document, round), so a rerun skips what is stored and an interrupted run loses at most the batch in flight.
"""

from __future__ import annotations

import hashlib
import random
import time
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tqdm import tqdm

from .config import check_fields, setting
from .errors import ConfigError
from .langs import LANGS, check_lang
from .models.base import Generation, Model, SamplingParams, load_model
from .prompts import PROMPT_VERSION, build_generation_prompt, parse_instruction
from .seed import SeedPair, load_seed
from .store import Store, Tx, to_json
from .store import candidates as stored_candidates
from .store import documents as stored_documents
from .store import registry

Backend = Literal["embedded", "transformers", "vllm", "llamacpp", "fake"]
BACKENDS: tuple[str, ...] = typing.get_args(Backend)
DEFAULT_FEW_SHOT = 2


@dataclass
class GenerateConfig:
    """Settings of the generation stage: what to generate for, which engine, how to sample. Each field's default, help
    and range also make the `xinstruct generate` option of the same name."""

    # what
    lang: str | None = setting(None, "only documents of this language (bn fi hi id sw ta th tr ur vi); default: all ten")
    limit: int | None = setting(None, "at most this many documents per language in this run; default: all pending",
                                min=0, cli_min=1)
    round_id: int | None = setting(None, "round to generate for; default: the latest round (1 when there is none)",
                                   min=1)
    # engine
    model: str | None = setting(None, "model version name or folder; default: the embedded model (with its shipped "
                                      "adapter)")
    backend: Backend | None = setting(None, "embedded | transformers | vllm | llamacpp | fake; default: embedded, or "
                                            "transformers with a model")
    device: str | None = setting(None, "transformers backends: cpu or cuda; default: cuda when available")
    batch_size: int = setting(8, "documents per model call and per store transaction", min=1)
    tensor_parallel_size: int = setting(1, "vllm: GPUs per pipeline stage", min=1)
    pipeline_parallel_size: int = setting(1, "vllm: pipeline stages (across nodes with Ray)", min=1)
    distributed_backend: Literal["ray", "mp", "uni", "external_launcher"] | None = setting(
        None, "vllm: 'ray' to use a Ray cluster (multi-node), 'mp' for one node; default: vllm's choice")
    # prompt
    few_shot: int | None = setting(None, "seed pairs shown as examples per prompt; default: 2, or 0 for a trained "
                                         "backward model", min=0)
    seed_files: list[str] = setting(help="seed file(s) for the few-shot examples; default: the packaged seed set",
                                    factory=list)
    max_text_chars: int = setting(1000, "the document is clipped to this many characters in the prompt", min=50)
    # sampling (stored with every candidate)
    max_new_tokens: int = setting(48, "longest instruction in tokens", min=1)
    temperature: float = setting(0.0, "sampling temperature (0 = greedy)", min=0, zero="greedy")
    top_p: float = setting(1.0, "nucleus sampling when temperature > 0", above=0, max=1)
    repetition_penalty: float = setting(1.1, "> 1 discourages loops in small models", above=0)
    sampling_seed: int = setting(0, "random seed when sampling", min=0)
    samples: int = setting(1, "drafts per document: 1, or N (the first plus N-1 sampled ones; the trained evaluator "
                              "keeps the best: measured on held-out paragraphs, 3 changed 18 of 97 drafts, 3 for the "
                              "better)", min=1)
    sample_temperature: float = setting(0.8, "temperature of the extra drafts (samples > 1)", above=0)
    progress: bool = setting(True, "show a progress bar")

    def validate(self) -> None:
        check_fields(self)
        if self.lang is not None:
            self.lang = check_lang(self.lang)

    def sampling(self) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                              repetition_penalty=self.repetition_penalty, seed=self.sampling_seed)

    def resolved_backend(self) -> str:
        return self.backend or ("embedded" if self.model in (None, "", "embedded", "default") else "transformers")


@dataclass(frozen=True)
class Doc:
    id: str
    lang: str
    text: str


def load_generator(cfg: GenerateConfig, store: Store | None = None) -> Model:
    """Load the model `cfg` asks for, passing each backend only the settings it understands."""
    backend = cfg.resolved_backend()
    kwargs: dict = {
        "embedded": {"device": cfg.device, "batch_size": cfg.batch_size},
        "transformers": {"device": cfg.device, "batch_size": cfg.batch_size, "store": store},
        "vllm": {"store": store, "tensor_parallel_size": cfg.tensor_parallel_size,
                 "pipeline_parallel_size": cfg.pipeline_parallel_size, "distributed_backend": cfg.distributed_backend},
    }.get(backend, {})
    return load_model(cfg.model, backend, **kwargs)


def is_backward_model(model: Model) -> bool:
    return bool(getattr(model, "backward", False))


def current_round(store: Store) -> int:
    """The latest round (1 when none was started)."""
    return registry.current_round(store)


def candidate_id(doc_id: str, round_id: int) -> str:
    return hashlib.sha256(f"{doc_id}\x1f{round_id}".encode()).hexdigest()[:20]


def count_pending(store: Store, langs: Sequence[str], round_id: int) -> int:
    return sum(pending_by_lang(store, langs, round_id).values())


def pending_by_lang(store: Store, langs: Sequence[str], round_id: int) -> dict[str, int]:
    """Documents still to generate for, per language (languages with none are left out). A document is used once: a
    later round generates only for documents no earlier round used."""
    return stored_documents.pending_by_lang(store, langs, round_id)


def next_pending(store: Store, quota: dict[str, int], round_id: int, n: int) -> list[Doc]:
    """Up to `n` pending documents, at most quota[lang] of each language, in (language, id) order."""
    return [Doc(*row) for row in stored_documents.next_pending(store, quota, round_id, n)]


def pick_examples(pool: Sequence[SeedPair], k: int, key: str) -> list[SeedPair]:
    """`k` seed pairs for one document, chosen deterministically from its id (different documents, different examples)."""
    if k <= 0 or not pool:
        return []
    rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
    return rng.sample(list(pool), min(k, len(pool)))


def candidate_row(doc: Doc, gen: Generation, *, round_id: int, model_name: str, sampling_json: str) -> dict:
    instruction, reason = parse_instruction(gen.text)
    return {
        "id": candidate_id(doc.id, round_id), "doc_id": doc.id, "lang": doc.lang, "round_id": round_id,
        "instruction": instruction, "raw": gen.text.strip(), "response": doc.text,
        "gen_status": "ok" if instruction else "rejected", "gen_reason": reason,
        "model_version": model_name, "prompt_version": PROMPT_VERSION, "sampling": sampling_json,
    }


def write_batch(tx: Tx, rows: list[dict]) -> int:
    """Insert the batch's candidates and their version 1 (stage 'generate'); rows already stored are skipped.

    A rejected candidate keeps instruction NULL; its version row holds the raw model output and the reason.
    """
    return stored_candidates.add_generated(tx, rows)


def run(store: Store, cfg: GenerateConfig | None = None, model: Model | None = None) -> dict:
    """Generate candidates for pending documents; returns counts, rejection reasons and speed (tokens/s, docs/min)."""
    cfg = cfg or GenerateConfig()
    cfg.validate()
    langs = [cfg.lang] if cfg.lang else list(LANGS)
    round_id = cfg.round_id or current_round(store)
    # the limit is per language: a run over all ten languages with limit 3 generates for up to 3 documents of each
    quota = {lang: n if cfg.limit is None else min(n, cfg.limit)
             for lang, n in pending_by_lang(store, langs, round_id).items()}
    total = sum(quota.values())
    stats: dict = {"round": round_id, "pending": total, "generated": 0, "written": 0, "ok": 0, "rejected": 0,
                   "reasons": Counter(), "new_tokens": 0, "seconds": 0.0}
    if total == 0:
        return _finish(stats)
    model = model or load_generator(cfg, store)
    k = 0 if is_backward_model(model) else (DEFAULT_FEW_SHOT if cfg.few_shot is None else cfg.few_shot)
    pools = {lang: load_seed(lang, cfg.seed_files or None) for lang in langs} if k else {}
    params = cfg.sampling()
    sampling_json = to_json({**params.as_dict(), "few_shot": k, "max_text_chars": cfg.max_text_chars,
                             **({"samples": cfg.samples, "sample_temperature": cfg.sample_temperature}
                                if cfg.samples > 1 else {})})
    chooser = DraftChooser(model, cfg, store) if cfg.samples > 1 else None
    stats.update(model=model.name, few_shot=k)
    with tqdm(total=total, unit="doc", desc="generate", disable=not cfg.progress) as bar:
        while stats["generated"] < total:
            docs = next_pending(store, quota, round_id, min(cfg.batch_size, total - stats["generated"]))
            if not docs:
                break
            for d in docs:
                quota[d.lang] -= 1
            prompts = [build_generation_prompt(d.text, d.lang, pick_examples(pools.get(d.lang, ()), k, d.id),
                                               max_chars=cfg.max_text_chars) for d in docs]
            start = time.perf_counter()
            gens = model.generate(prompts, params)
            if chooser is not None:
                gens = chooser.best(docs, prompts, gens)
            stats["seconds"] += time.perf_counter() - start
            rows = [candidate_row(d, g, round_id=round_id, model_name=model.name, sampling_json=sampling_json)
                    for d, g in zip(docs, gens)]
            stats["written"] += store.write(lambda tx: write_batch(tx, rows))
            _count(stats, rows, gens)
            bar.update(len(docs))
            bar.set_postfix(tok_s=f"{stats['new_tokens'] / max(stats['seconds'], 1e-9):.1f}", ok=stats["ok"])
    return _finish(stats)


class DraftChooser:
    """Best of several drafts per document: the first (as configured) plus `samples - 1` sampled ones, each parsed;
    the trained evaluator scores the ones that parse, and the best is kept: grounded (every name and number found
    in the text) first, then by P(keep)."""

    def __init__(self, model: Model, cfg: GenerateConfig, store: Store | None = None):
        from . import evaluator as trained

        self.model, self.cfg = model, cfg
        self.ev = trained.current(store)
        if self.ev is None:
            raise ConfigError("samples > 1 needs the trained evaluator, and none is shipped with this installation")
        same = self.ev.feature_model == getattr(model, "name", None)
        self.scorer = model if same else trained.load_feature_model(self.ev, cfg.device)

    def best(self, docs: Sequence[Doc], prompts: list[str], first: list[Generation]) -> list[Generation]:
        from .evaluator import assess

        n = self.cfg.samples - 1
        params = SamplingParams(max_new_tokens=self.cfg.max_new_tokens, temperature=self.cfg.sample_temperature,
                                top_p=0.95, repetition_penalty=self.cfg.repetition_penalty, seed=self.cfg.sampling_seed)
        extra = self.model.generate([p for p in prompts for _ in range(n)], params)
        drafts = [[g, *extra[i * n:(i + 1) * n]] for i, g in enumerate(first)]
        options: list[tuple[int, Generation, str]] = []
        for i, gens in enumerate(drafts):
            seen = set()
            for g in gens:
                instruction, _ = parse_instruction(g.text)
                if instruction and instruction not in seen:
                    seen.add(instruction)
                    options.append((i, g, instruction))
        scores = assess(self.ev, self.scorer, [(ins, docs[i].text, docs[i].lang) for i, _, ins in options])
        # A draft whose names and numbers are all in the text beats one that names something the text does not
        # (invented entities are the commonest reason reviewers reject drafts); then the higher P(keep) wins.
        best: dict[int, tuple[tuple[bool, float], Generation]] = {}
        for (i, g, _), a in zip(options, scores):
            rank = (not a.missing, a.p_keep)
            if i not in best or rank > best[i][0]:
                best[i] = (rank, g)
        out = []
        for i, gens in enumerate(drafts):
            chosen = best[i][1] if i in best else gens[0]  # none parsed: keep the first (it is rejected with its reason)
            out.append(Generation(chosen.text, n_tokens=sum(g.n_tokens for g in gens),
                                  meta={"drafts": len(gens), "p_keep": best[i][0][1] if i in best else None}))
        return out


def _count(stats: dict, rows: list[dict], gens: list[Generation]) -> None:
    stats["generated"] += len(rows)
    stats["new_tokens"] += sum(g.n_tokens for g in gens)
    for r in rows:
        stats[r["gen_status"]] += 1
        if r["gen_reason"]:
            stats["reasons"][r["gen_reason"]] += 1


def _finish(stats: dict) -> dict:
    seconds = stats["seconds"]
    stats["reasons"] = dict(stats["reasons"].most_common())
    stats["tokens_per_s"] = round(stats["new_tokens"] / seconds, 2) if seconds else 0.0
    stats["docs_per_min"] = round(60 * stats["generated"] / seconds, 2) if seconds else 0.0
    stats["seconds"] = round(seconds, 2)
    return stats
