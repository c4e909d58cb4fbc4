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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from .errors import ConfigError
from .langs import LANGS, check_lang
from .models.base import Generation, Model, SamplingParams, load_model
from .prompts import PROMPT_VERSION, build_generation_prompt, parse_instruction
from .seed import SeedPair, load_seed
from .store import Store, Tx, to_json

BACKENDS = ("embedded", "transformers", "vllm", "llamacpp", "fake")
DEFAULT_FEW_SHOT = 2


@dataclass
class GenerateConfig:
    """Settings of the generation stage: what to generate for, which engine, how to sample."""

    # what
    lang: str | None = None  # only documents of this language (bn fi hi id sw ta th tr ur vi); None = all ten
    limit: int | None = None  # at most this many documents in this run; None = all pending
    round_id: int | None = None  # round to generate for; None = the latest round in `rounds` (1 when there is none)
    # engine
    model: str | None = None  # model version name or folder; None = the embedded default (with its shipped adapter)
    backend: str | None = None  # embedded | transformers | vllm | llamacpp | fake; None = embedded, or transformers with a model
    device: str | None = None  # transformers backends: cpu or cuda; None = cuda when available
    batch_size: int = 8  # documents per model call and per store transaction
    tensor_parallel_size: int = 1  # vllm: GPUs per pipeline stage
    pipeline_parallel_size: int = 1  # vllm: pipeline stages (across nodes with Ray)
    distributed_backend: str | None = None  # vllm: "ray" to run across nodes of a Ray cluster, None = vllm's choice
    # prompt
    few_shot: int | None = None  # seed pairs shown as examples; None = 2, or 0 for a trained backward model
    seed_files: list[str] = field(default_factory=list)  # seed files for the examples; empty = the packaged seed set
    max_text_chars: int = 1000  # the document is clipped to this many characters in the prompt
    # sampling (stored with every candidate)
    max_new_tokens: int = 48  # longest instruction in tokens
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # nucleus sampling when temperature > 0
    repetition_penalty: float = 1.1  # > 1 discourages loops in small models
    sampling_seed: int = 0  # random seed when sampling
    progress: bool = True  # show a progress bar

    def validate(self) -> None:
        if self.lang is not None:
            self.lang = check_lang(self.lang)
        if self.backend is not None and self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        checks = [
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.limit is None or self.limit >= 0, "limit must be 0 or more"),
            (self.few_shot is None or self.few_shot >= 0, "few_shot must be 0 or more"),
            (self.max_text_chars >= 50, "max_text_chars must be at least 50"),
            (self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
            (self.temperature >= 0, "temperature must be 0 (greedy) or more"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

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
    with store.session() as tx:
        return tx.scalar("SELECT max(id) FROM rounds") or 1


def candidate_id(doc_id: str, round_id: int) -> str:
    return hashlib.sha256(f"{doc_id}\x1f{round_id}".encode()).hexdigest()[:20]


_PENDING = """
    FROM documents d
    WHERE d.status = 'kept' AND d.lang IN ({langs})
      AND NOT EXISTS (SELECT 1 FROM candidates c WHERE c.doc_id = d.id AND c.round_id <= ?)
"""  # a document is used once: a later round generates only for documents no earlier round used


def count_pending(store: Store, langs: Sequence[str], round_id: int) -> int:
    sql = "SELECT count(*) " + _PENDING.format(langs=", ".join("?" * len(langs)))
    with store.session() as tx:
        return tx.scalar(sql, [*langs, round_id])


def next_pending(store: Store, langs: Sequence[str], round_id: int, n: int) -> list[Doc]:
    # ids first, texts for those n only: the anti-join then reads ids and languages, not every pending document's text
    # (seconds per batch on a store of 50,000 pending documents, with the file held while the app waits)
    sql = ("SELECT p.id, p.lang, d.text FROM (SELECT d.id, d.lang " + _PENDING.format(langs=", ".join("?" * len(langs)))
           + " ORDER BY d.lang, d.id LIMIT ?) p JOIN documents d ON d.id = p.id ORDER BY p.lang, p.id")
    with store.session() as tx:
        return [Doc(*row) for row in tx.all(sql, [*langs, round_id, n])]


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
    if not rows:
        return 0
    marks = ", ".join("?" * len(rows))
    stored = {r[0] for r in tx.all(f"SELECT id FROM candidates WHERE id IN ({marks})", [r["id"] for r in rows])}
    new = [r for r in rows if r["id"] not in stored]
    tx.executemany(
        "INSERT OR IGNORE INTO candidates (id, doc_id, lang, round_id, instruction, response, version, gen_status, "
        "gen_reason, model_version, prompt_version, sampling) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
        [[r["id"], r["doc_id"], r["lang"], r["round_id"], r["instruction"], r["response"], r["gen_status"],
          r["gen_reason"], r["model_version"], r["prompt_version"], r["sampling"]] for r in new],
    )
    tx.executemany(
        "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, reason, round_id, model_version) "
        "VALUES (?, 1, 'generate', ?, ?, ?, ?)",
        [[r["id"], r["instruction"] or r["raw"], r["gen_reason"], r["round_id"], r["model_version"]] for r in new],
    )
    return len(new)


def run(store: Store, cfg: GenerateConfig | None = None, model: Model | None = None) -> dict:
    """Generate candidates for pending documents; returns counts, rejection reasons and speed (tokens/s, docs/min)."""
    cfg = cfg or GenerateConfig()
    cfg.validate()
    langs = [cfg.lang] if cfg.lang else list(LANGS)
    round_id = cfg.round_id or current_round(store)
    total = count_pending(store, langs, round_id)
    total = total if cfg.limit is None else min(total, cfg.limit)
    stats: dict = {"round": round_id, "pending": total, "generated": 0, "written": 0, "ok": 0, "rejected": 0,
                   "reasons": Counter(), "new_tokens": 0, "seconds": 0.0}
    if total == 0:
        return _finish(stats)
    model = model or load_generator(cfg, store)
    k = 0 if is_backward_model(model) else (DEFAULT_FEW_SHOT if cfg.few_shot is None else cfg.few_shot)
    pools = {lang: load_seed(lang, cfg.seed_files or None) for lang in langs} if k else {}
    params = cfg.sampling()
    sampling_json = to_json({**params.as_dict(), "few_shot": k, "max_text_chars": cfg.max_text_chars})
    stats.update(model=model.name, few_shot=k)
    with tqdm(total=total, unit="doc", desc="generate", disable=not cfg.progress) as bar:
        while stats["generated"] < total:
            docs = next_pending(store, langs, round_id, min(cfg.batch_size, total - stats["generated"]))
            if not docs:
                break
            prompts = [build_generation_prompt(d.text, d.lang, pick_examples(pools.get(d.lang, ()), k, d.id),
                                               max_chars=cfg.max_text_chars) for d in docs]
            start = time.perf_counter()
            gens = model.generate(prompts, params)
            stats["seconds"] += time.perf_counter() - start
            rows = [candidate_row(d, g, round_id=round_id, model_name=model.name, sampling_json=sampling_json)
                    for d, g in zip(docs, gens)]
            stats["written"] += store.write(lambda tx: write_batch(tx, rows))
            _count(stats, rows, gens)
            bar.update(len(docs))
            bar.set_postfix(tok_s=f"{stats['new_tokens'] / max(stats['seconds'], 1e-9):.1f}", ok=stats["ok"])
    return _finish(stats)


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
