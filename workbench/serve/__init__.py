"""The OpenAI-compatible fusion API: ``workbench serve`` (standalone) and ``/v1`` inside the Gradio app.

``app`` builds the ``/v1`` routes (``create_api``), the key they ask for declared once (``auth``); a request
becomes a run in ``chat``, whose events ``pump`` waits for or streams; ``targets`` says what a model name runs,
``bodies`` reads request bodies within their limits; the wire format is ``protocol`` coming in (and errors) and
``responses`` going out; the judge's answer is streamed as it is written by ``streaming``; the command is
``cli``. FastAPI is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["create_api", "create_server_app", "mount_routes"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module(".app", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
