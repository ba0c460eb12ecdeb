"""Fusion events -> what a view of the run should change, as a pure async generator (no Gradio).

The page's run handler and the ``/fuse`` API both consume ``view_updates``: the page maps each
``ViewUpdate`` to its components, the API to JSON. Updates are coalesced to at most one per
``every_s`` while tokens stream, and always sent when a member finishes and at the end; the status line says
the phase (loading, round k of n, judge and ordering) and the seconds since the run began, at least every second.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import assert_never

from ..events import (Event, JudgeStart, JudgeToken, Loading, MemberDone, MemberToken, RoundEnd, RoundStart, RunDone,
                      RunStart, VerdictEvent)
from ..records import FusionResult
from ..render.html import member_stats


@dataclass
class ViewUpdate:
    """What changed since the last update."""

    status: str | None = None  #: the status line, when it changed (the phase and the time since the run began)
    bodies: dict[int, str] = field(default_factory=dict)  #: member -> its column's text (whole, not a delta)
    stats: dict[int, str] = field(default_factory=dict)  #: member -> its stats line
    judge: str | None = None  #: the judge at work: its rationale (and written answer) so far, plain text
    result: FusionResult | None = None  #: the finished run (the last update)
    round: int = 1  #: the round in progress
    texts: list[str] = field(default_factory=list)  #: every member's text so far in this round (a snapshot)
    elapsed_s: float = 0.0  #: seconds since the run began
    phase: str = ""  #: what the run is doing (the status line without its time)

    def __bool__(self) -> bool:
        return bool(self.status is not None or self.bodies or self.stats or self.judge is not None
                    or self.result is not None)


class Phase:
    """What a run is doing, from its events: "round 1 of 2: members writing (1 of 3 done)", "judge writing
    (ordering 1 of 2)"... The status line is the phase and the seconds since the run began."""

    def __init__(self, n_members: int):
        self.n = n_members
        self.text = "starting"
        self.rounds = 1
        self.round = 0
        self.done = 0
        self.loading: tuple[float, list[str]] | None = None
        self.loaded = ""  #: "loaded smol in 3.1 s; " once, after a load

    def see(self, ev: Event) -> bool:
        """Follow one event; whether the phase changed."""
        match ev:
            case RunStart():
                self.rounds = ev.rounds
                self.text = f"run `{ev.run_id}`: {ev.mode} with {len(ev.members)} member(s)"
            case Loading():
                self.loading = (time.monotonic(), ev.models)
                self.text = f"loading {', '.join(ev.models)} (first use; later runs reuse it)"
            case RoundStart():
                if self.loading is not None:
                    self.loaded = (f"loaded {', '.join(self.loading[1])} in "
                                   f"{time.monotonic() - self.loading[0]:.1f} s; ")
                    self.loading = None
                self.round, self.done = ev.round, 0
                self.text = self._round()
            case MemberDone():
                self.done += 1
                self.text = self._round()
            case RoundEnd():
                if ev.agreed:
                    self.text = f"round {ev.round}: every member agrees, the debate stops here"
            case JudgeStart():
                self.loaded = ""
                of = f", ordering {ev.attempt} of {ev.orderings}" if ev.orderings > 1 else ""
                self.text = f"judge reading {len(ev.order)} answer(s){of}"
            case VerdictEvent():
                self.text = "judge done; saving" if ev.verdict.mode != "vote" else "votes counted; saving"
            case _:
                return False
        return True

    def _round(self) -> str:
        where = f"round {self.round} of {self.rounds}" if self.rounds > 1 else "members"
        return f"{self.loaded}{where}: {self.done} of {self.n} member(s) done"

    def status(self, elapsed_s: float) -> str:
        line = self.text[:1].upper() + self.text[1:]
        return f"{line} · {elapsed_s:.0f} s"


class JudgeText:
    """The judge's reply decoded as it is written: its rationale, then its written answer (merge, debate)."""

    def __init__(self) -> None:
        from ..serve.streaming import FieldStream

        self.rationale, self.answer = FieldStream("rationale"), FieldStream("answer")

    def feed(self, piece: str) -> str:
        why, answer = self.rationale.feed(piece), self.answer.feed(piece)
        return why + (f"\n\nAnswer: {answer}" if answer else "")


async def view_updates(events: AsyncIterator[Event], n_members: int, every_s: float = 0.05, tick_s: float = 1.0
                       ) -> AsyncIterator[ViewUpdate]:
    """Follow a run's events and yield the view changes they make; every ``tick_s`` without one, the status line
    again with the time since the run began (a sign of life while a model reads a prompt)."""
    from ..events import Pump

    texts = [""] * n_members
    cur_round = 1
    pending = ViewUpdate()
    t0 = last = status_at = time.monotonic()
    phase = Phase(n_members)
    judge: JudgeText | None = None
    pump = Pump(events)  # type: ignore[arg-type]  # an async generator (fuse_stream); read from its own task

    def stamped(u: ViewUpdate, now: float) -> ViewUpdate:
        """``u`` with what every update carries: the round, every member's text, the time and the phase."""
        u.round, u.texts, u.elapsed_s, u.phase = cur_round, list(texts), now - t0, phase.text
        return u

    try:
        while True:
            try:
                ev = await pump.next(tick_s)
            except TimeoutError:
                now = status_at = time.monotonic()
                yield stamped(ViewUpdate(status=phase.status(now - t0)), now)
                continue
            if ev is None:
                break
            if phase.see(ev):
                pending.status = ""  # filled in with the time below
            match ev:  # one case per kind: a new kind fails type-checking here (assert_never) until it is handled
                case MemberToken():
                    texts[ev.member] += ev.text
                    pending.bodies[ev.member] = texts[ev.member]
                case RoundStart():
                    cur_round = ev.round
                    if ev.round > 1:
                        texts = [""] * n_members
                        pending.stats.update({i: f"round {ev.round}…" for i in range(n_members)})
                case MemberDone():
                    o = ev.output
                    pending.bodies[o.member] = o.text if o.ok else o.text + f"\n\n**{o.status}**: {o.reason}"
                    pending.stats[o.member] = (f"round {o.round} · " if cur_round > 1 else "") + member_stats(o)
                case JudgeStart():
                    judge = JudgeText()
                    pending.judge = ""
                case JudgeToken():
                    if judge is not None:
                        pending.judge = judge.feed(ev.text)
                case RunDone():
                    pending.result = ev.result
                case RunStart() | Loading() | RoundEnd() | VerdictEvent():  # the phase above says it
                    pass
                case _:
                    assert_never(ev)
            now = time.monotonic()
            if pending.status is not None or now - status_at >= tick_s:  # the time moves while tokens stream too
                pending.status, status_at = phase.status(now - t0), now
            if pending and (now - last >= every_s or isinstance(ev, (MemberDone, RunDone))):
                yield stamped(pending, now)
                pending, last = ViewUpdate(), now
        if pending:
            yield stamped(pending, time.monotonic())
    finally:  # a Stop or a closed page: the run is cancelled (and stored as interrupted)
        await pump.close()
