"""Pure renderers: a record in, text out. Markdown and JSON exports, HTML for the page and notebooks.

Figures are in ``render.plots`` (same rule: data in, ``plotly`` Figure out); the evaluation's HTML
report is ``workbench.eval.report``. Nothing here touches the store, a model or Gradio.
"""

from __future__ import annotations

import json

from ..records import FusionResult
from .markdown import to_markdown


def to_json(result: FusionResult) -> str:
    """The run as indented JSON (the store's record format)."""
    return json.dumps(result.to_dict(), indent=2, default=str)


def export(result: FusionResult, fmt: str = "md") -> str:
    """The run as ``md`` (Markdown) or ``json``."""
    return to_json(result) if fmt == "json" else to_markdown(result)


__all__ = ["export", "to_json", "to_markdown"]
