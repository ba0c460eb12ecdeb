"""The table of backends: which class serves a ``ModelSpec.backend``. One line per backend.

Each entry names its module and class, imported only when a model of that kind is loaded, so an
optional dependency is needed only by those who use it (the class names the package when it is missing).
``register_backend`` adds one (a plugin, a test double for a server that cannot run here).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from ..errors import ConfigError
from ..specs import ModelSpec
from .base import ModelBackend

#: backend name -> "module:Class" (or a factory added by register_backend)
BACKENDS: dict[str, str | Callable[[ModelSpec], ModelBackend]] = {
    "local": "workbench.backends.local:LocalModel",  # transformers on this machine (any HF model, Scout INT4)
    "tiny": "workbench.backends.local:LocalModel",  # the offline tiny Llama 4, built on first use
    "openai": "workbench.backends.openai_compat:OpenAICompatModel",  # any OpenAI-compatible endpoint
}


def register_backend(name: str, factory: str | Callable[[ModelSpec], ModelBackend]) -> None:
    """Serve specs with ``backend == name`` by ``factory`` ("module:Class" or a callable taking the spec)."""
    BACKENDS[name] = factory


def construct(spec: ModelSpec) -> ModelBackend:
    """A new backend for ``spec`` (this loads a local model's weights)."""
    try:
        factory = BACKENDS[spec.backend]
    except KeyError:
        raise ConfigError(f"{spec.name}: unknown backend {spec.backend!r}; known: {', '.join(BACKENDS)}") from None
    if isinstance(factory, str):
        module, _, cls = factory.partition(":")
        factory = getattr(import_module(module), cls)
    return factory(spec)
