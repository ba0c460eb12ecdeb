"""Serving until told to stop, then draining: what ``workbench demo`` does on SIGTERM and Ctrl-C.

Spaces (and Docker, systemd, Kubernetes) stop a container with SIGTERM, then SIGKILL after a while.
On the first SIGTERM or Ctrl-C the server refuses new runs, gives runs in flight ``grace_s`` seconds to
finish, records those that could not as interrupted (``workbench.shutdown``), closes the web server,
unloads every model (workers joined) and returns, so the process exits 0. A second signal acts as
usual (Ctrl-C raises, SIGTERM kills): the way out of a drain that takes too long.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

#: how long shutdown waits for models to close (a load in progress, e.g. Scout, cannot be interrupted)
UNLOAD_WAIT_S = 30.0


class StopSignals:
    """Catches the first SIGTERM / SIGINT (install it as early as possible: a signal during start-up counts)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.first: str | None = None
        self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(self, signum, _frame) -> None:
        self.first = self.first or signal.Signals(signum).name
        self.event.set()
        self.restore()  # the next one acts as usual

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def serve_until_signal(server: Any, grace_s: float, stop: StopSignals | None = None) -> None:
    """Block until SIGTERM / SIGINT, then drain runs, close ``server`` (its ``close()``) and unload models."""
    from .backends import unload_all
    from .shutdown import RUNS

    stop = stop or StopSignals()
    try:
        while not stop.event.wait(0.5):  # a short wait keeps the main thread responsive to signals
            pass
    finally:
        stop.restore()
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    say(f"{stop.first or 'stop'}: refusing new runs; {RUNS.in_flight} in flight get up to {grace_s:g} s to finish")
    report = RUNS.drain(grace_s)
    say(f"drained in {report.seconds:.1f} s: {report.finished} finished, {report.interrupted} recorded as "
        f"interrupted" + (f", {report.stuck} did not stop in time (not recorded)" if report.stuck else ""))
    server.close()
    closed: list[str] = []
    closer = threading.Thread(target=lambda: closed.extend(unload_all()), name="workbench-unload", daemon=True)
    closer.start()
    closer.join(UNLOAD_WAIT_S)
    if closer.is_alive():  # a load in progress cannot be interrupted; every run is already recorded
        say(f"a model is still loading after {UNLOAD_WAIT_S:g} s; exiting without waiting for it")
        os._exit(0)
    if closed:
        say(f"unloaded {', '.join(closed)}")
