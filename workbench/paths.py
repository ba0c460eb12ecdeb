"""Where the workbench keeps things on disk (each overridable by an environment variable)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Built and converted checkpoints (tiny Llama 4, INT4 copies): ``$WORKBENCH_CACHE`` or ~/.cache/workbench."""
    return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")


def data_home() -> Path:
    """The run store's folder: ``$WORKBENCH_HOME``, else ``$XDG_DATA_HOME/workbench`` (~/.local/share/workbench)."""
    home = os.environ.get("WORKBENCH_HOME")
    return Path(home) if home else Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "workbench"
