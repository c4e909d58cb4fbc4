"""Train the backward model: native text -> English instruction, learnt from seed pairs (method, stage 1).

The model sees exactly the generation prompt without few-shot examples (prompts.build_generation_prompt) and learns to
write the instruction after it: the loss covers only the instruction tokens (and the end-of-sequence token); the
prompt's labels are -100. Examples are cut to `max_tokens` by shortening the text, never the instruction.

LoRA (peft) on every linear projection by default; `lora=False` fine-tunes all weights. The result is saved under
`<models root>/<name>/` (`models/` beside the database the command was given, see models.hf.models_root) with
metadata.json and registered in `model_versions` (kind 'generator'), so `xinstruct generate --model NAME` uses it.

With `human_pairs`, the accepted and edited pairs that `xinstruct feedback` stored (store.registry.generator_pairs) are
added to the seed pairs: they are read from the store, never from files.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from .errors import ConfigError, XInstructError
from .langs import check_lang
from .models.base import Model, SamplingParams
from .models.embedded import EMBEDDED_NAME
from .models.hf import load_hf, models_root, resolve_model
from .prompts import PROMPT_VERSION, build_generation_prompt, parse_instruction
from .seed import SeedPair, data_hash, load_seed, split_heldout
from .store import Store, registry
from .vocab import GENERATOR


@dataclass
class TrainConfig:
    """Settings of backward-model training."""

    seed_files: list[str] = field(default_factory=list)  # seed .jsonl files; empty = the packaged seed set
    human_pairs: bool = False  # add the accepted and edited pairs stored by `xinstruct feedback` (every run)
    langs: list[str] = field(default_factory=list)  # train on these languages only; empty = every language in the files
    holdout_every: int = 0  # hold out every N-th pair per language for evaluation (seed.split_heldout); 0 = use all
    base: str = EMBEDDED_NAME  # base model: gemma3-270m (embedded), a model folder, or a model version name
    name: str | None = None  # version name to register; None = "backward-<data hash>"
    lora: bool = True  # LoRA adapter (small, fast); False = full fine-tune (needs ~9 GiB for the embedded model)
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scaling
    lora_dropout: float = 0.0  # dropout on the LoRA path
    lr: float = 2e-4  # peak learning rate (cosine decay after warm-up)
    warmup_ratio: float = 0.05  # share of steps spent warming up
    epochs: float = 1.5  # passes over the training pairs (1-2 is enough; measured on 240 Finnish pairs)
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    batch_size: int = 4  # pairs per forward pass
    grad_accum: int = 2  # forward passes per optimizer step (effective batch = batch_size * grad_accum)
    # 256 cuts more than half of the real web paragraphs shorter than generation shows them (1,000 characters; 400
    # tokens hold nearly all); xi-backward-v4 was trained at 400 and judged no better than v3 (BENCHMARKS.md).
    max_tokens: int = 256  # longest example in tokens; the text is shortened to fit, never the instruction
    fp16: bool = False  # save LoRA weights in fp16 (half the size; cast back to the model's dtype when loaded)
    seed: int = 0  # random seed (shuffling, LoRA init)
    device: str | None = None  # cpu or cuda; None = cuda when available
    progress: bool = True  # show a progress bar

    def validate(self) -> None:
        self.langs = [check_lang(code) for code in self.langs]
        checks = [
            (self.epochs > 0 or (self.max_steps or 0) > 0, "epochs or max_steps must be positive"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be at least 1"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
            (self.max_tokens >= 32, "max_tokens must be at least 32"),
            (self.lr > 0, "lr must be positive"),
            (self.holdout_every >= 0, "holdout_every must be 0 (none) or more"),
            (self.lora_r >= 1, "lora_r must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 on the prompt, the token ids on the instruction and EOS


def encode_example(tokenizer, pair: SeedPair, max_tokens: int) -> Example:
    """Prompt (text shortened to fit `max_tokens`) + instruction + EOS; labels only on instruction and EOS."""
    target = tokenizer(pair.instruction, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    budget = max_tokens - len(target)
    prompt = tokenizer(build_generation_prompt(pair.response, pair.lang)).input_ids
    if len(prompt) > budget:
        overhead = len(tokenizer(build_generation_prompt("", pair.lang)).input_ids)
        if overhead > budget:
            raise ConfigError(f"max_tokens {max_tokens} is too small: the prompt and the instruction of seed pair "
                              f"{pair.id} alone take {overhead + len(target)} tokens")
        text_ids = tokenizer(pair.response, add_special_tokens=False).input_ids
        keep = budget - overhead
        while True:  # decoding and re-encoding can shift the count by a token or two
            text = tokenizer.decode(text_ids[:keep], skip_special_tokens=True)
            prompt = tokenizer(build_generation_prompt(text, pair.lang)).input_ids
            if len(prompt) <= budget or keep == 0:
                break
            keep = max(0, keep - (len(prompt) - budget))
    return Example(prompt + target, [-100] * len(prompt) + target)


def collate(examples: Sequence[Example], pad_id: int):
    """Left-padded tensors: input_ids, attention_mask, position_ids (counted from each row's first real token), labels.

    Every row ends in the last column, so the labelled tokens (each row's end) lie together in the last columns and
    `target_loss` projects onto the vocabulary only there.
    """
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, width - n:], labels[i, width - n:], mask[i, width - n:] = torch.tensor(e.input_ids), torch.tensor(e.labels), 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "labels": labels}


def target_loss(model, batch: dict):
    """Mean cross-entropy over the labelled tokens of a `collate` batch (the same value as the model's own loss).

    The model projects onto the vocabulary only from the column before the first labelled one (`logits_to_keep`):
    with Gemma 3's 262k-token vocabulary, logits over whole sequences are most of a training step's time and memory.
    """
    import torch.nn.functional as F

    labels = batch["labels"]
    first = int((labels != -100).any(0).nonzero()[0])  # first column holding a label (never 0: a prompt comes first)
    keep = labels.shape[1] - first + 1
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    try:
        out = model(**inputs, logits_to_keep=keep)
    except TypeError:  # a model class without logits_to_keep (remote code): all logits, the same loss, slower
        out = model(**inputs)
    logits = out.logits[:, -keep:-1]  # columns first-1 .. width-2 predict the tokens in columns first .. width-1
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels[:, first:].reshape(-1), ignore_index=-100)


def micro_batches(examples: Sequence[Example], size: int, seed: int) -> Iterator[list[Example]]:
    """Endless micro-batches, reshuffled every epoch."""
    epoch = 0
    while True:
        order = list(range(len(examples)))
        random.Random(seed + epoch).shuffle(order)
        for i in range(0, len(order), size):
            yield [examples[j] for j in order[i : i + size]]
        epoch += 1


def total_steps(cfg: TrainConfig, n_examples: int) -> int:
    per_epoch = math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum))
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))


def training_pairs(cfg: TrainConfig, store: Store | None = None) -> tuple[list[SeedPair], list[SeedPair]]:
    """(train, held-out) pairs: the seed files (or the packaged seed), plus with `cfg.human_pairs` the human pairs
    stored in `store` by the feedback loop."""
    pairs = load_seed(files=cfg.seed_files or None)
    if cfg.human_pairs:
        if store is None:
            raise ConfigError("human_pairs needs the store the feedback loop wrote them to")
        pairs += [SeedPair(f"human-{p.candidate_id}", p.lang, p.instruction, p.response)
                  for p in registry.generator_pairs(store)]
    pairs = [p for p in pairs if not cfg.langs or p.lang in cfg.langs]
    train, held = split_heldout(pairs, cfg.holdout_every)
    if not train:
        raise XInstructError("no seed pairs to train on; pass --seed FILE (JSON Lines with lang, instruction, response)")
    return train, held


def train_generator(store: Store, cfg: TrainConfig | None = None) -> str:
    """Train a backward generator on the seed pairs, save and register it; returns the new version name."""
    import torch

    cfg = cfg or TrainConfig()
    cfg.validate()
    train, held = training_pairs(cfg, store)
    digest = data_hash(train)
    name = cfg.name or f"backward-{digest[:8]}"
    folder = _new_model_folder(store, name)
    torch.manual_seed(cfg.seed)
    tokenizer, model = load_hf(resolve_model(store, cfg.base), cfg.device)
    examples = [encode_example(tokenizer, p, cfg.max_tokens) for p in train]
    model = _trainable(model, cfg)
    steps = total_steps(cfg, len(examples))
    started = time.perf_counter()
    losses = _optimise(model, examples, steps, cfg, tokenizer.pad_token_id)
    meta = {
        "name": name, "task": "backward", "base": cfg.base, "method": "lora" if cfg.lora else "full",
        "data_hash": digest, "pairs": len(train), "heldout_pairs": len(held),
        "langs": sorted({p.lang for p in train}), "steps": steps, "final_loss": losses[-1], "losses": losses,
        "train_seconds": round(time.perf_counter() - started, 1), "prompt_version": PROMPT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": asdict(cfg),
    }
    _save(model, tokenizer, folder, meta, cfg)
    _register(store, name, folder, meta)
    return name


def _new_model_folder(store: Store, name: str) -> Path:
    if "/" in name or name.startswith(".") or name == EMBEDDED_NAME:
        raise ConfigError(f"invalid model name {name!r}; use letters, digits, '-', '_' (not {EMBEDDED_NAME})")
    if registry.version_exists(store, name):
        raise XInstructError(f"model version {name!r} already exists; choose another --name")
    folder = models_root(store) / name
    if folder.exists() and any(folder.iterdir()):
        raise XInstructError(f"{folder} already exists and is not empty; choose another --name or remove the folder")
    return folder


def _trainable(model, cfg: TrainConfig):
    if not cfg.lora:
        model.requires_grad_(True)
        return model.train()
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora).train()


def _optimise(model, examples: list[Example], steps: int, cfg: TrainConfig, pad_id: int) -> list[float]:
    """AdamW with cosine decay; returns the mean training loss (instruction tokens) of every optimizer step."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    batches = micro_batches(examples, cfg.batch_size, cfg.seed)
    device = next(model.parameters()).device
    losses: list[float] = []
    with tqdm(total=steps, unit="step", desc="train", disable=not cfg.progress) as bar:
        for _ in range(steps):
            step_loss = 0.0
            for _ in range(cfg.grad_accum):
                batch = {k: v.to(device) for k, v in collate(next(batches), pad_id).items()}
                loss = target_loss(model, batch) / cfg.grad_accum
                loss.backward()
                step_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(round(step_loss, 4))
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}")
    model.eval()
    return losses


def _save(model, tokenizer, folder: Path, meta: dict, cfg: TrainConfig) -> None:
    """Write the adapter (or full model) to a temporary folder beside `folder`, then move it into place."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    (tmp / "README.md").unlink(missing_ok=True)  # peft's empty model-card template; metadata.json says what this is
    if cfg.lora:
        _set_adapter_base(tmp / "adapter_config.json", cfg.base)
    if cfg.lora and cfg.fp16:
        half_adapter(tmp / "adapter_model.safetensors")
    if not cfg.lora:
        tokenizer.save_pretrained(tmp)
    (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if folder.exists():
        folder.rmdir()  # checked empty by _new_model_folder
    tmp.rename(folder)


def _set_adapter_base(path: Path, base: str) -> None:
    """Record the base as it was named (e.g. gemma3-270m), not as a path on this machine."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def half_adapter(path: Path) -> None:
    """Rewrite a safetensors file with its floating-point tensors in fp16."""
    from safetensors.torch import load_file, save_file

    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def _register(store: Store, name: str, folder: Path, meta: dict, kind: str = GENERATOR,
              extra_metrics: dict | None = None) -> None:
    """Insert the version into model_versions (kind 'generator' here; 'instruct' from instruct.py)."""
    metrics = {k: meta[k] for k in ("losses", "pairs", "heldout_pairs", "langs", "method", "train_seconds")}
    metrics.update(extra_metrics or {})
    registry.register_version(store, name, kind, base=meta["base"], path=str(folder.resolve()),
                              data_hash=meta["data_hash"], steps=meta["steps"], final_loss=meta["final_loss"],
                              metrics=metrics)


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation on held-out seed pairs
# ---------------------------------------------------------------------------------------------------------------------
def evaluate_generator(model: Model, pairs: Sequence[SeedPair], embed: Callable[[list[str]], object], *,
                       examples: Sequence[SeedPair] = (), k: int = 0, params: SamplingParams | None = None,
                       max_chars: int = 1000) -> dict:
    """Generate an instruction for each held-out pair's response and compare it with the reference.

    Returns the share of outputs the parser accepts (a single English instruction of sane length), the mean cosine
    similarity between the generated and the reference instruction (`embed` returns L2-normalised vectors; a rejected
    output is compared as written), and the outputs. `k` few-shot `examples` of the same language precede each text,
    clipped to `max_chars` as in the generation stage.
    """
    from .generate import pick_examples

    params = params or SamplingParams()
    prompts = [build_generation_prompt(p.response, p.lang, pick_examples([e for e in examples if e.lang == p.lang], k, p.id),
                                       max_chars=max_chars) for p in pairs]
    outputs = [g.text.strip() for g in model.generate(prompts, params)]
    parsed = [parse_instruction(o) for o in outputs]
    hyp = [inst or out for (inst, _), out in zip(parsed, outputs)]
    gen_vecs, ref_vecs = embed(hyp), embed([p.instruction for p in pairs])
    cosines = [float((a * b).sum()) if h else 0.0 for a, b, h in zip(gen_vecs, ref_vecs, hyp)]
    return {
        "pairs": len(pairs),
        "english_share": round(sum(inst is not None for inst, _ in parsed) / max(len(pairs), 1), 3),
        "mean_cosine": round(sum(cosines) / max(len(cosines), 1), 3),
        "outputs": [{"id": p.id, "lang": p.lang, "reference": p.instruction, "output": o, "reason": r, "cosine": round(c, 3)}
                    for p, o, (_, r), c in zip(pairs, outputs, parsed, cosines)],
    }
