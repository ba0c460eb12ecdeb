"""The OpenAI-compatible fusion API: ``workbench serve`` (standalone) and ``/v1`` inside the Gradio app.

``create_api`` builds the ``/v1`` routes (``app``); the wire format is ``protocol``; the judge's answer is
streamed as it is written by ``streaming``; the command is ``cli``. FastAPI is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["create_api", "create_server_app", "mount_routes"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module(".app", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
