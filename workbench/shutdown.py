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
import math
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from .errors import BusyError, WorkbenchError
from .records import STOPPED

T = TypeVar("T")

#: the reason recorded on runs cancelled by a drain
SHUTDOWN_REASON = STOPPED["shutdown"]


class ShuttingDownError(WorkbenchError):
    """The server is shutting down and takes no new runs."""


@dataclass
class DrainReport:
    """What a drain did."""

    finished: int  #: runs that finished within the grace period
    interrupted: int  #: runs cancelled at its end that saved themselves as interrupted
    seconds: float  #: how long the drain took
    stuck: int = 0  #: cancelled runs that had not ended ``cancel_wait_s`` later (not recorded)


@dataclass(eq=False)
class Admission:
    """A run slot held for one caller between ``RunTracker.admit`` and ``start`` (or ``release``)."""

    owner: str | None
    total: int
    seq: int
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    granted: bool = False
    bumped: bool = False  #: its place in a full line went to a caller who had used the server less


class RunTracker:
    """The runs in flight in this process, and the callers waiting for a slot.

    A server's slots (``total``) are shared fairly. When all are taken a run waits (``admit``: at most ``wait_s``
    seconds, at most ``max_waiting`` runs in the line), and each slot that frees goes to the waiting caller who
    has used the server least lately (then the one who came first). A caller's use is the share of its recent time
    it had a run in flight or waiting, each refusal for want of room counting as ``refusal_s`` seconds: busy
    seconds decayed with a time constant of ``tau_s``, over the same decayed span of the time since the caller was
    first seen (at least ``min_span_s``), so that a client that has just arrived and keeps the server busy weighs
    as much as one that has done so for minutes. A full line takes a newcomer who has used the server less than
    someone in it, and that one is refused instead. One slot in eight (``total // 8``) is kept for light callers,
    those busy less than ``light_share`` of their recent time. So a visitor who fuses now and then is served at
    the next free slot however many clients keep the server full, and those who keep it full share what is left:
    a client that is always running or waiting is, by design, served like each of them.
    """

    tau_s = 60.0
    refusal_s = 1.0
    min_span_s = 2.0
    light_share = 1 / 3

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task]] = {}
        self._owners: dict[int, str | None] = {}
        self._waiting: list[Admission] = []
        self._granted: list[Admission] = []
        # owner -> [decayed busy seconds, at, runs in flight or waiting, first seen]
        self._use: dict[str | None, list[float]] = {}
        self._next = 0
        self.draining = False

    # -- how much each caller has used the server lately (under the lock) --

    def _used(self, owner: str | None, now: float, change: int = 0, create: bool = False) -> float:
        """``owner``'s decayed busy seconds up to ``now``; ``change`` adds to its runs in flight or waiting (an
        owner not seen yet gets an entry when ``change`` or ``create``)."""
        if owner is None:
            return 0.0
        use = self._use.get(owner)
        if use is None:
            if not change and not create:
                return 0.0
            if len(self._use) > 4096:  # forget callers with nothing in flight whose use has decayed
                for o in [o for o, u in self._use.items() if not u[2] and u[0] * math.exp(
                        -(now - u[1]) / self.tau_s) < 0.01]:
                    del self._use[o]
            use = self._use[owner] = [0.0, now, 0, now]
        decay = math.exp(-(now - use[1]) / self.tau_s)
        use[0] = use[0] * decay + (self.tau_s * (1 - decay) if use[2] > 0 else 0.0)
        use[1] = now
        use[2] += change
        return use[0]

    def _share(self, owner: str | None, now: float) -> float:
        """The share of its recent time ``owner`` has used the server (0 for a caller never seen)."""
        busy = self._used(owner, now)
        if not busy:
            return 0.0
        span = self.tau_s * (1 - math.exp(-(now - self._use[owner][3]) / self.tau_s))
        return busy / max(span, self.min_span_s)

    def _refused(self, owner: str | None) -> None:
        """A caller refused for want of room asked for the server all the same: each refusal counts as
        ``refusal_s`` seconds of use (the Retry-After it is given), so a client that keeps retrying against a full
        line weighs as much as one waiting in it (under the lock)."""
        if owner is None:
            return
        self._used(owner, time.monotonic(), create=True)
        self._use[owner][0] += self.refusal_s

    def _rank(self, adm: Admission, now: float) -> tuple[float, int]:
        return self._share(adm.owner, now), adm.seq

    def check(self, owner: str | None = None, per_owner: int | None = None, total: int | None = None,
              max_waiting: int | None = None) -> None:
        """Raise as ``admit`` would at once, registering nothing (to refuse work that would come before the run).

        With ``max_waiting``, a full server refuses only when its line is full of callers who have used it less."""
        with self._cond:
            try:
                self._refuse(owner, per_owner, None if max_waiting is not None else total)
                if max_waiting is not None and total is not None and self._taken() >= total \
                        and len(self._waiting) >= max_waiting and self._bumpable(owner) is None:
                    raise self._full(total, max_waiting)
            except BusyError:
                self._refused(owner)
                raise

    def _taken(self) -> int:
        return len(self._runs) + len(self._granted)

    def _bumpable(self, owner: str | None) -> Admission | None:
        """The waiting caller a newcomer ``owner`` would take the place of in a full line (the one who has used the
        server most, if more than ``owner``)."""
        if not self._waiting:
            return None
        now = time.monotonic()
        worst = max(self._waiting, key=lambda a: self._rank(a, now))
        return worst if self._share(owner, now) < self._share(worst.owner, now) else None

    def _full(self, total: int, max_waiting: int) -> BusyError:
        return BusyError(f"the server is busy ({len(self._runs)} runs in flight, its limit is {total}, and "
                         f"{len(self._waiting)} waiting, its limit is {max_waiting}); try again in a moment")

    def _refuse(self, owner: str | None, per_owner: int | None, total: int | None) -> None:
        if self.draining:
            raise ShuttingDownError("the server is shutting down and takes no new runs; try again in a moment")
        if total is not None and (self._taken() >= total or self._waiting):
            raise BusyError(f"the server is busy ({len(self._runs)} runs in flight, its limit is {total}); "
                            f"try again in a moment")
        if per_owner is not None and owner is not None:
            mine = sum(1 for o in self._owners.values() if o == owner) + sum(
                1 for a in (*self._waiting, *self._granted) if a.owner == owner)
            if mine >= per_owner:
                raise BusyError(f"you already have {mine} run(s) in flight, this server's limit; wait for it "
                                f"to finish or stop it")

    async def admit(self, owner: str | None, per_owner: int | None, total: int | None, wait_s: float,
                    max_waiting: int) -> Admission | None:
        """Hold a slot for a run about to start: at once when one is free and nobody waits, else in the line.

        Returns the slot (pass it to ``start``, or ``release`` it), or None when ``total`` is None (no limit).

        Raises:
            ShuttingDownError: the server is draining.
            BusyError: the caller is at ``per_owner``; the line is full of callers who have used the server less;
                its place in the line went to such a caller; or no slot came within ``wait_s``.
        """
        loop = asyncio.get_running_loop()
        with self._cond:
            try:
                self._refuse(owner, per_owner, None)
            except BusyError:
                self._refused(owner)
                raise
            if total is None:
                return None
            self._next += 1
            adm = Admission(owner, total, self._next)
            now = time.monotonic()
            adm.loop, adm.future = loop, loop.create_future()
            self._waiting.append(adm)
            self._used(owner, now, +1)
            self._grant()
            if adm.granted:  # a free slot, and nobody waiting ranked before it
                return adm
            if len(self._waiting) > max_waiting:  # the line is full: its heaviest caller leaves it
                worst = max(self._waiting, key=lambda a: self._rank(a, now))
                self._drop(worst, now)
                self._refused(worst.owner)
                if worst is adm:
                    raise self._full(total, max_waiting)
                worst.bumped = True
                self._wake(worst)
        try:
            await asyncio.wait_for(asyncio.shield(adm.future), wait_s)
        except TimeoutError:
            with self._cond:
                if not adm.granted:  # (granted meanwhile: take it)
                    if adm in self._waiting:
                        self._drop(adm, time.monotonic())
                    self._refused(owner)
                    raise BusyError(f"the server is busy: no run slot came free in {wait_s:g} s ({len(self._runs)} "
                                    f"runs in flight, its limit is {total}; {len(self._waiting)} waiting); "
                                    f"try again in a moment") from None
        except BaseException:  # the caller went away while waiting
            self.release(adm)
            raise
        if adm.bumped:
            raise BusyError(f"the server is busy ({total} runs in flight, its limit, and a full line): your place in "
                            f"it went to a visitor who has used the server less lately; try again in a moment")
        if self.draining:
            self.release(adm)
            raise ShuttingDownError("the server is shutting down and takes no new runs; try again in a moment")
        return adm

    def _drop(self, adm: Admission, now: float) -> None:
        """Take a caller out of the line or the held slots (under the lock)."""
        if adm in self._waiting:
            self._waiting.remove(adm)
        else:
            self._granted.remove(adm)
        self._used(adm.owner, now, -1)

    @staticmethod
    def _wake(adm: Admission) -> bool:
        try:
            future, loop = adm.future, adm.loop
            if future is None or loop is None:  # not waiting: nothing to wake
                return False
            def wake() -> None:
                if not future.done():
                    future.set_result(None)
            loop.call_soon_threadsafe(wake)
            return True
        except RuntimeError:  # its loop is closed: nobody is waiting any more
            return False

    def release(self, adm: Admission | None) -> None:
        """Give back a slot that ``admit`` held and no run took (the call failed before its run started)."""
        if adm is None:
            return
        with self._cond:
            if adm in self._waiting or adm in self._granted:
                self._drop(adm, time.monotonic())
                self._grant()

    def _reserved(self, total: int) -> int:
        """Slots kept for light callers: a busy server keeps ``total // 8`` of its slots (one of public's eight)
        for callers who have used it less than ``light_share`` of their recent time."""
        return total // 8

    def _grant(self) -> None:
        """Give free slots to waiting callers, the least busy lately first; the reserved slots to light callers
        only (under the lock)."""
        now = time.monotonic()
        while self._waiting:
            adm = min(self._waiting, key=lambda a: self._rank(a, now))
            light = self._share(adm.owner, now) < self.light_share
            if self._taken() >= adm.total - (0 if light else self._reserved(adm.total)):
                break
            self._waiting.remove(adm)
            adm.granted = True
            self._granted.append(adm)
            if not self._wake(adm):
                self._drop(adm, now)

    def start(self, task: asyncio.Task, owner: str | None = None, per_owner: int | None = None,
              total: int | None = None, admission: Admission | None = None) -> int:
        """Register a running task; raises ShuttingDownError while draining, PolicyError over a limit.

        Args:
            owner: who the per-owner limit counts (a visitor); per_owner / total: runs in flight allowed.
            admission: the slot ``admit`` held for it (then the limits were checked there).
        """
        with self._cond:
            now = time.monotonic()
            if admission is not None and admission in self._granted:
                self._granted.remove(admission)  # its use goes on as the run's
                if self.draining:
                    self._used(owner, now, -1)
                    raise ShuttingDownError("the server is shutting down and takes no new runs; try again in a "
                                            "moment")
            else:
                self._refuse(owner, per_owner, total)
                self._used(owner, now, +1)
            self._next += 1
            self._runs[self._next] = (task.get_loop(), task)
            self._owners[self._next] = owner
            return self._next

    def end(self, token: int) -> None:
        with self._cond:
            self._runs.pop(token, None)
            if token in self._owners:
                self._used(self._owners.pop(token), time.monotonic(), -1)
            self._grant()
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
            for adm in list(self._waiting):  # those waiting for a slot are told at once (admit raises)
                self._drop(adm, t0)
                self._wake(adm)
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


async def run_tracked(coro: Awaitable[T], what: str, quota: str | None = None,
                      per_owner: int | None = None, total: int | None = None) -> T:
    """Run ``coro`` (a coroutine or a future) as a task registered in RUNS (a re-judge, a whole evaluation).

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
