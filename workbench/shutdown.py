"""Runs in flight and a server that drains: refuse new runs, let running ones finish, record the rest.

Every fusion run registers here while it runs (``fuse_stream`` does it). A server (``workbench demo``,
``workbench serve``) calls ``drain(grace_s)`` on SIGTERM or Ctrl-C: new runs are refused with
``ShuttingDownError``, runs in flight get ``grace_s`` seconds to finish, and those still running are
cancelled, which makes each one save itself as *interrupted* (what its members had written so far
included) before it ends. Runs live on an event loop in another thread than the one draining, so all
of this is thread-safe.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any, Coroutine, TypeVar

from .errors import BusyError, WorkbenchError

T = TypeVar("T")

#: the reason recorded on runs cancelled by a drain
SHUTDOWN_REASON = "the server shut down before the run finished"


class ShuttingDownError(WorkbenchError):
    """The server is shutting down and takes no new runs."""


@dataclass
class DrainReport:
    """What a drain did."""

    finished: int  #: runs that finished within the grace period
    interrupted: int  #: runs cancelled at its end that saved themselves as interrupted
    seconds: float  #: how long the drain took
    stuck: int = 0  #: cancelled runs that had not ended ``cancel_wait_s`` later (not recorded)


class RunTracker:
    """The runs in flight in this process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task]] = {}
        self._owners: dict[int, str | None] = {}
        self._next = 0
        self.draining = False

    def check(self, owner: str | None = None, per_owner: int | None = None, total: int | None = None) -> None:
        """Raise as ``start`` would, registering nothing (to refuse work that would come before the run)."""
        with self._cond:
            self._refuse(owner, per_owner, total)

    def _refuse(self, owner: str | None, per_owner: int | None, total: int | None) -> None:
        if self.draining:
            raise ShuttingDownError("the server is shutting down and takes no new runs; try again in a moment")
        if total is not None and len(self._runs) >= total:
            raise BusyError(f"the server is busy ({len(self._runs)} runs in flight, its limit is {total}); "
                            f"try again in a moment")
        mine = sum(1 for o in self._owners.values() if o == owner) if owner is not None else 0
        if per_owner is not None and owner is not None and mine >= per_owner:
            raise BusyError(f"you already have {mine} run(s) in flight, this server's limit; wait for it "
                            f"to finish or stop it")

    def start(self, task: asyncio.Task, owner: str | None = None, per_owner: int | None = None,
              total: int | None = None) -> int:
        """Register a running task; raises ShuttingDownError while draining, PolicyError over a limit.

        Args:
            owner: who the per-owner limit counts (a visitor); per_owner / total: runs in flight allowed.
        """
        with self._cond:
            self._refuse(owner, per_owner, total)
            self._next += 1
            self._runs[self._next] = (task.get_loop(), task)
            self._owners[self._next] = owner
            return self._next

    def end(self, token: int) -> None:
        with self._cond:
            self._runs.pop(token, None)
            self._owners.pop(token, None)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._runs)

    def drain(self, grace_s: float, cancel_wait_s: float = 30.0) -> DrainReport:
        """Refuse new runs, wait up to ``grace_s`` for runs in flight, then cancel (and record) the rest."""
        t0 = time.monotonic()
        with self._cond:
            self.draining = True
            start = len(self._runs)
            self._cond.wait_for(lambda: not self._runs, timeout=max(0.0, grace_s))
            left = list(self._runs.values())
        for loop, task in left:
            try:
                loop.call_soon_threadsafe(task.cancel, SHUTDOWN_REASON)
            except RuntimeError:  # its loop is closed: nothing more can run there
                pass
        with self._cond:  # each cancelled run saves its interrupted record, then ends
            self._cond.wait_for(lambda: not self._runs, timeout=cancel_wait_s)
            stuck = len(self._runs)
        return DrainReport(start - len(left), len(left) - stuck, time.monotonic() - t0, stuck)

    def reopen(self) -> None:
        """Take runs again (tests; a server that stayed up)."""
        with self._cond:
            self.draining = False


#: the process's runs
RUNS = RunTracker()


async def run_tracked(coro: Coroutine[Any, Any, T], what: str, quota: str | None = None,
                      per_owner: int | None = None, total: int | None = None) -> T:
    """Run ``coro`` as a task registered in RUNS (a re-judge, a whole evaluation).

    A draining server waits for it like any run, then cancels it; the caller then gets ShuttingDownError
    naming ``what``, never a half-done result. ``quota``, ``per_owner``, ``total``: as ``RunTracker.start``.
    """
    task = asyncio.ensure_future(coro)
    try:
        token = RUNS.start(task, quota, per_owner, total)
    except WorkbenchError:
        task.cancel()
        raise
    task.add_done_callback(lambda _t: RUNS.end(token))
    try:
        await asyncio.wait({task})
    finally:
        if not task.done():  # our caller was cancelled (Stop): so is the work
            task.cancel()
    if task.cancelled():
        raise ShuttingDownError(f"the server shut down before {what} finished")
    return task.result()
