"""Fusion Workbench: does a fused pool of models beat the best single one, and why?

The public API, re-exported. Importing this package imports no torch, transformers or gradio: heavy
modules load on first use of the attribute that needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (BackendError, ConfigError, InputError, JudgeError, ModelLoadError, OutOfMemoryError,
                     UnknownModelError, WorkbenchError)
from .specs import Member, ModelSpec, load_registry
from .types import Chunk, Failure, GenerateConfig, ImageData, Message, Prompt, Response, Usage

__version__ = "0.1.0"

# name -> module that defines it; imported on first access
_LAZY = {
    "load_model": "workbench.backends",
    "unload": "workbench.backends",
    "unload_all": "workbench.backends",
    "loaded": "workbench.backends",
    "ModelHandle": "workbench.backends",
    "fuse": "workbench.fusion.engine",
    "fuse_stream": "workbench.fusion.engine",
    "rejudge": "workbench.fusion.engine",
    "FusionResult": "workbench.records",
    "FusionSettings": "workbench.settings",
    "RunContext": "workbench.context",
    "RunStore": "workbench.storage",
    "evaluate": "workbench.eval.harness",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "BackendError", "Chunk", "ConfigError", "Failure", "GenerateConfig", "ImageData", "InputError", "JudgeError",
    "Member", "Message", "ModelLoadError", "ModelSpec", "OutOfMemoryError", "Prompt", "Response", "UnknownModelError",
    "Usage", "WorkbenchError", "load_registry", *_LAZY,
]
