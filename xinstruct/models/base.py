"""One model interface for every stage: generate text, give label-word probabilities, give log-likelihoods.

Backends: `embedded` (Gemma 3 270M from a PyPI package, via transformers), `transformers` (any local folder),
`vllm` (GPU, optional extra, imported lazily), `openai` (an OpenAI-compatible chat endpoint over HTTP), `fake` (scripted, for tests). `load_model` picks one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings, stored with every candidate they produced."""

    max_new_tokens: int = 48
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ("\n",)
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    text: str
    n_tokens: int = 0
    meta: dict = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    name: str  # model version recorded with everything it produced

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """One completion per prompt (the prompt itself not included)."""
        ...

    def label_probs(self, prompts: list[str], words: list[str]) -> list[dict[str, float]]:
        """For each prompt, the probabilities of each word as the next token(s), normalised over `words`."""
        ...

    def loglik(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Mean log-probability per token of each continuation given its prompt (prompt may be empty)."""
        ...


def load_model(spec: str | None = None, backend: str | None = None, **kwargs) -> Model:
    """Load a model by version name (store/models/NAME), local path, or the embedded default.

    backend: embedded | transformers | vllm | llamacpp | openai (an OpenAI-compatible HTTP endpoint) | fake; None picks embedded for no spec, else transformers.
    """
    backend = backend or ("embedded" if spec in (None, "", "embedded", "default") else "transformers")
    if backend == "fake":
        from .fake import FakeModel

        return FakeModel(**kwargs)
    if backend == "embedded":
        from .embedded import load_embedded

        return load_embedded(spec, **kwargs)
    if backend == "transformers":
        from .hf import TransformersModel

        return TransformersModel.load(spec, **kwargs)
    if backend == "vllm":
        from .vllm_backend import VLLMModel

        return VLLMModel.load(spec, **kwargs)
    if backend == "llamacpp":
        from .llamacpp import LlamaCppModel

        return LlamaCppModel.load(spec, **kwargs)
    if backend == "openai":
        from .openai_http import OpenAIChatModel

        return OpenAIChatModel.load(spec, **kwargs)
    from ..errors import ConfigError

    raise ConfigError(f"unknown backend {backend!r}; use embedded, transformers, vllm, llamacpp, openai or fake")
