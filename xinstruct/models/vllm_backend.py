"""The vLLM backend (GPU, optional extra `pip install xinstruct[gpu]`): offline batched inference, one node or many.

Same model specs as the transformers backend (resolve_model). A trained LoRA adapter is served on its base model with
vLLM's LoRA support; a stack of adapters must be merged first (train with --full, or load and save with transformers).
Multi-node: start a Ray cluster (`ray start --head` on one node, `ray start --address HEAD:6379` on the others), then run
the same command on the head with --tensor-parallel-size (GPUs per node) --pipeline-parallel-size (nodes)
--distributed-backend ray.
"""

from __future__ import annotations

import json
import math

from ..errors import XInstructError
from .base import Generation, SamplingParams
from .embedded import ALIASES, EMBEDDED_NAME, shipped_adapter
from .hf import cut_at_stop, resolve_model, split_ids

TOP_LOGPROBS = 20  # vLLM's default ceiling for returned log-probabilities per position


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise XInstructError("the vllm backend needs vLLM and a GPU: pip install 'xinstruct[gpu]' "
                             "(or use --backend transformers)") from exc
    return vllm


class VLLMModel:
    def __init__(self, llm, name: str, *, lora_request=None, backward: bool = False):
        self.llm, self.name, self.lora, self.backward = llm, name, lora_request, backward
        self.tokenizer = llm.get_tokenizer()

    @classmethod
    def load(cls, spec: str | None = None, *, store=None, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
             distributed_backend: str | None = None, **engine_args) -> VLLMModel:
        """Start a vLLM engine for `spec` (default: the embedded model with the shipped adapter)."""
        vllm = _import_vllm()
        if spec in ALIASES:
            spec = str(shipped_adapter() or EMBEDDED_NAME)
        ref = resolve_model(store, spec)
        chain = ref.chain()
        if len(chain) > 2:
            raise XInstructError(f"{ref.name} stacks {len(chain) - 1} adapters; vLLM serves one: merge them into a full model")
        lora_args, lora_request = {}, None
        if len(chain) == 2:
            rank = json.loads((ref.path / "adapter_config.json").read_text())["r"]
            lora_args = {"enable_lora": True, "max_lora_rank": max(8, rank)}
            from vllm.lora.request import LoRARequest

            lora_request = LoRARequest(ref.name, 1, str(ref.path))
        llm = vllm.LLM(model=str(chain[0].path), tensor_parallel_size=tensor_parallel_size,
                       pipeline_parallel_size=pipeline_parallel_size, distributed_executor_backend=distributed_backend,
                       **lora_args, **engine_args)
        return cls(llm, ref.name, lora_request=lora_request, backward=ref.backward)

    def _run(self, prompts, **sampling):
        vllm = _import_vllm()
        return self.llm.generate(prompts, vllm.SamplingParams(**sampling), lora_request=self.lora, use_tqdm=False)

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        outs = self._run(prompts, max_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
                         repetition_penalty=params.repetition_penalty, stop=list(params.stop), seed=params.seed)
        return [Generation(cut_at_stop(o.outputs[0].text, params.stop)[0], n_tokens=len(o.outputs[0].token_ids))
                for o in outs]

    def label_probs(self, prompts: list[str], words: list[str]) -> list[dict[str, float]]:
        """From the top-20 next-token log-probabilities; a word outside them counts as 0."""
        variants = [{ids[0] for v in (w, " " + w) if (ids := self.tokenizer.encode(v, add_special_tokens=False))}
                    for w in words]
        outs = self._run(prompts, max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS)
        result = []
        for o in outs:
            top = o.outputs[0].logprobs[0]
            raw = [sum(math.exp(top[t].logprob) for t in ids if t in top) for ids in variants]
            total = sum(raw)
            result.append({w: (p / total if total else 1 / len(words)) for w, p in zip(words, raw)})
        return result

    def loglik(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """From vLLM's prompt log-probabilities of prompt + continuation."""
        from vllm.inputs import TokensPrompt

        pairs = [split_ids(self.tokenizer, p, c) for p, c in zip(prompts, continuations)]
        outs = self._run([TokensPrompt(prompt_token_ids=p + c) for p, c in pairs], max_tokens=1, prompt_logprobs=0)
        result = []
        for (p, c), o in zip(pairs, outs):
            ids = p + c
            scores = [o.prompt_logprobs[i][ids[i]].logprob for i in range(len(p), len(ids))]
            result.append(sum(scores) / len(scores) if scores else 0.0)
        return result
