"""The events one fusion run streams, in order: what the UI, the API and notebooks render.

One small class per kind, each with a literal ``kind``; ``Event`` is their union. A run's stream starts
with RunStart and ends with RunDone, whose result is the whole FusionResult (interrupted runs too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from .records import FusionResult, MemberOutput, Verdict


@dataclass
class RunStart:
    """The run is validated and has an id; models load next."""

    run_id: str
    mode: str
    members: list[str]  #: member labels, in pool order
    rounds: int  #: rounds planned (debate may stop early)
    kind: Literal["run_start"] = "run_start"


@dataclass
class Loading:
    """Models not loaded yet are loading (first use); the run's first round starts when they are."""

    models: list[str]  #: their names
    kind: Literal["loading"] = "loading"


@dataclass
class RoundStart:
    """A round begins: 1 is the pool phase, 2.. are debate rounds."""

    round: int
    kind: Literal["round_start"] = "round_start"


@dataclass
class MemberToken:
    """New text from one member."""

    member: int  #: index in the pool
    round: int
    text: str  #: the new piece only
    kind: Literal["member_token"] = "member_token"


@dataclass
class MemberDone:
    """One member finished (or failed) its round."""

    output: MemberOutput
    kind: Literal["member_done"] = "member_done"


@dataclass
class RoundEnd:
    """A round ended."""

    round: int
    agreed: bool = False  #: debate: every answer agrees, so the debate stops here
    kind: Literal["round_end"] = "round_end"


@dataclass
class JudgeStart:
    """The judge is asked, with the candidates in this order (member indices shown as A, B, ...)."""

    attempt: int  #: which ordering, from 1
    order: list[int]
    orderings: int = 1  #: how many orderings the judge is asked in all
    kind: Literal["judge_start"] = "judge_start"


@dataclass
class JudgeToken:
    """New text from the judge."""

    text: str
    kind: Literal["judge_token"] = "judge_token"


@dataclass
class VerdictEvent:
    """The verdict over every ordering (or the vote)."""

    verdict: Verdict
    kind: Literal["verdict"] = "verdict"


@dataclass
class RunDone:
    """The last event: the whole run, finished, degraded or interrupted."""

    result: FusionResult
    kind: Literal["run_done"] = "run_done"


Event = (RunStart | Loading | RoundStart | MemberToken | MemberDone | RoundEnd | JudgeStart | JudgeToken | VerdictEvent
         | RunDone)


class Pump:
    """Reads a run's events into a queue from its own task, so that waiting with a timeout (keep-alives) never
    cancels the run's generator; ``close`` stops the run (members and judge are cancelled)."""

    def __init__(self, events: AsyncGenerator[Event, None]):
        self.events = events
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for e in self.events:
                self.queue.put_nowait(e)
        except BaseException as exc:  # noqa: BLE001  (handed to the reader, which raises it)
            self.queue.put_nowait(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.queue.put_nowait(None)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event; None at the end; raises what the run raised; TimeoutError after ``timeout``."""
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self, why: str = "cancelled") -> None:
        """Stop the run if it is still going (``why``: one of ``records.STOPPED``, recorded as its ``stopped``)."""
        if not self.task.done():
            self.task.cancel(why)
        with contextlib.suppress(BaseException):  # shielded: a cancellation of the caller (anyio cancels what a
            await asyncio.shield(self.task)       # cancelled task awaits) must not reach the run with its reason
        with contextlib.suppress(BaseException):
            await self.events.aclose()
