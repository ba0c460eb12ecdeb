"""The old import path of ``workbench.testing.scripted_server`` (kept working: scripts and notebooks name it)."""

from .testing.scripted_server import *  # noqa: F403
from .testing.scripted_server import ScriptedServer, main

__all__ = ["ScriptedServer"]

if __name__ == "__main__":  # python -m workbench.scripted_server [PORT]
    import sys

    main(sys.argv[1:])
