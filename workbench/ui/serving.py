"""Serving until told to stop, then draining: what ``workbench demo`` does on SIGTERM and Ctrl-C.

Spaces (and Docker, systemd, Kubernetes) stop a container with SIGTERM, then SIGKILL after a while.
On the first SIGTERM or Ctrl-C the server refuses new runs, gives runs in flight ``grace_s`` seconds to
finish, records those that could not as interrupted (``workbench.shutdown``), closes the web server,
unloads every model (workers joined) and returns, so the process exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


def serve_until_signal(server: Any, grace_s: float, stop: threading.Event | None = None) -> None:
    """Block until SIGTERM / SIGINT (or ``stop`` is set), then drain and close ``server`` (its ``close()``)."""
    from ..backends import unload_all
    from ..shutdown import RUNS

    stop = stop or threading.Event()
    signals = {}

    def on_signal(signum, _frame) -> None:
        signals.setdefault("first", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):  # a short wait keeps the main thread responsive to signals
            pass
        why = signals.get("first", "a stop request")
        print(f"{why}: refusing new runs; {RUNS.in_flight} in flight get up to {grace_s:g} s to finish",
              file=sys.stderr, flush=True)
        report = RUNS.drain(grace_s)
        print(f"drained in {report.seconds:.1f} s: {report.finished} finished, {report.interrupted} recorded "
              f"as interrupted", file=sys.stderr, flush=True)
        server.close()
        closed = unload_all()
        if closed:
            print(f"unloaded {', '.join(closed)}", file=sys.stderr, flush=True)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
