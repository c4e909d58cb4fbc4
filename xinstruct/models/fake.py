"""A scripted model for unit tests: answers come from functions of the prompt, and every call is recorded."""

from __future__ import annotations

from collections.abc import Callable

from .base import Generation, SamplingParams


class FakeModel:
    def __init__(
        self,
        name: str = "fake-1",
        generate_fn: Callable[[str], str] | None = None,
        label_fn: Callable[[str], dict[str, float]] | None = None,
        loglik_fn: Callable[[str, str], float] | None = None,
    ):
        self.name = name
        self.generate_fn = generate_fn or (lambda prompt: "Write a short text about this topic.")
        self.label_fn = label_fn or (lambda prompt: {})
        self.loglik_fn = loglik_fn or (lambda prompt, cont: -2.0 if prompt else -3.0)
        self.calls: list[tuple[str, list[str]]] = []

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        self.calls.append(("generate", list(prompts)))
        out = []
        for p in prompts:
            text = self.generate_fn(p)
            out.append(Generation(text, n_tokens=len(text.split())))
        return out

    def label_probs(self, prompts: list[str], words: list[str]) -> list[dict[str, float]]:
        self.calls.append(("label_probs", list(prompts)))
        out = []
        for p in prompts:
            raw = {w: float(self.label_fn(p).get(w, 1.0)) for w in words}
            total = sum(raw.values()) or 1.0
            out.append({w: v / total for w, v in raw.items()})
        return out

    def loglik(self, prompts: list[str], continuations: list[str]) -> list[float]:
        self.calls.append(("loglik", list(prompts)))
        return [self.loglik_fn(p, c) for p, c in zip(prompts, continuations)]
