"""Where the workbench keeps things on disk (each overridable by an environment variable)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    """Built and converted checkpoints (tiny Llama 4, INT4 copies): ``$WORKBENCH_CACHE`` or ~/.cache/workbench."""
    return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")


def data_home() -> Path:
    """The run store's folder: ``$WORKBENCH_HOME``, else ``$XDG_DATA_HOME/workbench`` (~/.local/share/workbench)."""
    home = os.environ.get("WORKBENCH_HOME")
    return Path(home) if home else Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "workbench"


def build_once(target: Path, marker: str, build: Callable[[Path], object]) -> Path:
    """``target`` (a folder in the cache), built by ``build(folder)`` on first use: into a temp folder beside it,
    then renamed, so a reader never sees half a build (``marker``, a file the build writes, says it is whole). One
    process builds; another that wants it at the same time (test workers, notebook kernels, two apps starting) waits
    for that build and uses it (``build_lock``)."""
    if (target / marker).is_file():
        return target
    with build_lock(target):
        if (target / marker).is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
        try:
            build(tmp)
            try:
                tmp.rename(target)
            except OSError:  # another process finished first (where nothing could be locked)
                if not (target / marker).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """Held while one process builds ``target``: the others wait. Where there is no ``fcntl`` (Windows) nothing is
    locked (``build_once``'s rename still keeps the cache whole)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(target.parent / f".{target.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
