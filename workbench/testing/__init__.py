"""What tests, benchmarks and demos of the workbench run against, shipped with it: a scripted OpenAI-compatible
server (``ScriptedServer``: the model name is the script) and a free local port."""

from __future__ import annotations

import socket

from .scripted_server import ScriptedServer

__all__ = ["ScriptedServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS picks it; another process may take it before it is bound)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
