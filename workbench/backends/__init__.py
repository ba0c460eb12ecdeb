"""Model backends: local transformers models, the offline tiny Llama 4, OpenAI-compatible endpoints.

``load_model`` is the one entry point; loaded local models are shared, so members that use the same
model cost one copy of the weights and their requests are batched together.
"""

from __future__ import annotations

import threading

from ..specs import ModelSpec, Registry, load_registry, with_quant
from .base import ModelBackend, StreamEnd

_LOADED: dict[tuple, ModelBackend] = {}
_LOCK = threading.Lock()


def spec_for(model: str | ModelSpec, quant: str | None = None, registry: Registry | None = None) -> ModelSpec:
    """Resolve a model name (preset, ``scheme:model``, HF id, directory) to a ModelSpec."""
    spec = model if isinstance(model, ModelSpec) else (registry or load_registry()).resolve(model)
    return with_quant(spec, quant)


def load_model(model: str | ModelSpec, quant: str | None = None, registry: Registry | None = None) -> ModelBackend:
    """Load (or reuse) a model by preset name, Hugging Face id, local checkpoint directory or endpoint spec.

    Args:
        model: e.g. "scout-int4", "tiny-offline", "meta-llama/Llama-4-Scout-17B-16E-Instruct", "./ckpt",
            "openrouter:meta-llama/llama-4-scout", or a ModelSpec.
        quant: "int4" or "none" to override the spec's quantization (local models).
        registry: where presets come from (default: shipped presets + user file).

    Raises:
        UnknownModelError, ModelLoadError, OutOfMemoryError, MissingDependencyError.
    """
    spec = spec_for(model, quant, registry)
    key = (spec.backend, spec.model, spec.quant, spec.base_url, spec.api_key_env, spec.dtype,
           tuple(sorted((spec.max_memory or {}).items())), spec.skip_modules)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if spec.backend == "openai":
            from .openai_compat import OpenAICompatModel

            backend: ModelBackend = OpenAICompatModel(spec)
        else:
            from .local import LocalModel

            backend = LocalModel(spec)
        _LOADED[key] = backend
        return backend


def unload_all() -> None:
    """Close every loaded model (frees threads and memory)."""
    with _LOCK:
        for backend in _LOADED.values():
            backend.close()
        _LOADED.clear()


__all__ = ["ModelBackend", "StreamEnd", "load_model", "spec_for", "unload_all"]
