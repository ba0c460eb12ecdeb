"""Fusion events -> what a view of the run should change, as a pure async generator (no Gradio).

The page's run handler and the ``/fuse`` API both consume ``view_updates``: the page maps each
``ViewUpdate`` to its components, the API to JSON. Updates are coalesced to at most one per
``every_s`` while tokens stream, and always sent when a member finishes and at the end.
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

    status: str | None = None  #: the status line, when it changed
    bodies: dict[int, str] = field(default_factory=dict)  #: member -> its column's text (whole, not a delta)
    stats: dict[int, str] = field(default_factory=dict)  #: member -> its stats line
    result: FusionResult | None = None  #: the finished run (the last update)
    round: int = 1  #: the round in progress
    texts: list[str] = field(default_factory=list)  #: every member's text so far in this round (a snapshot)

    def __bool__(self) -> bool:
        return bool(self.status is not None or self.bodies or self.stats or self.result is not None)


async def view_updates(events: AsyncIterator[Event], n_members: int, every_s: float = 0.05
                       ) -> AsyncIterator[ViewUpdate]:
    """Follow a run's events and yield the view changes they make."""
    texts = [""] * n_members
    cur_round = 1
    pending = ViewUpdate()
    last = time.monotonic()
    loading: tuple[float, list[str]] | None = None
    async for ev in events:
        match ev:  # one case per kind: a new kind fails type-checking here (assert_never) until it is handled
            case MemberToken():
                texts[ev.member] += ev.text
                pending.bodies[ev.member] = texts[ev.member]
            case Loading():
                loading = (time.monotonic(), ev.models)
                pending.status = f"Loading {', '.join(ev.models)} (first use; later runs reuse it)…"
            case RoundStart():
                if loading is not None:
                    pending.status = (f"Loaded {', '.join(loading[1])} in {time.monotonic() - loading[0]:.1f} s; "
                                      "generating…")
                    loading = None
                cur_round = ev.round
                if ev.round > 1:
                    texts = [""] * n_members
                    pending.stats.update({i: f"round {ev.round}…" for i in range(n_members)})
            case MemberDone():
                o = ev.output
                pending.bodies[o.member] = o.text if o.ok else o.text + f"\n\n**{o.status}**: {o.reason}"
                pending.stats[o.member] = (f"round {o.round} · " if cur_round > 1 else "") + member_stats(o)
            case RunStart():
                pending.status = f"Run `{ev.run_id}`: {ev.mode} with {len(ev.members)} member(s)…"
            case JudgeStart():
                pending.status = f"Judging (ordering {ev.attempt})…"
            case VerdictEvent():
                pending.status = "Judge done; saving…"
            case RunDone():
                pending.result = ev.result
            case RoundEnd() | JudgeToken():  # nothing on the page changes
                pass
            case _:
                assert_never(ev)
        now = time.monotonic()
        if pending and (now - last >= every_s or isinstance(ev, (MemberDone, RunDone))):
            pending.round, pending.texts = cur_round, list(texts)
            yield pending
            pending, last = ViewUpdate(), now
    if pending:
        pending.round, pending.texts = cur_round, list(texts)
        yield pending
