"""`spaces.GPU` on Hugging Face ZeroGPU Spaces, inert everywhere else.

On ZeroGPU a GPU is attached only while a function decorated with ``spaces.GPU`` runs, so the local
backend's batched generate call is wrapped with it. Elsewhere (or without the ``spaces`` package) the
decorator returns the function unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def on_zerogpu() -> bool:
    """True inside a ZeroGPU Space (the platform sets SPACES_ZERO_GPU)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def gpu(fn: F, duration: int = 120) -> F:
    """Wrap ``fn`` with ``spaces.GPU(duration=...)`` on ZeroGPU; return it unchanged elsewhere."""
    if not on_zerogpu():
        return fn
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn)
