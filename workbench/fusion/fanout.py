"""Fan a prompt out to every member of a pool at once; wait only for the slowest (or the timeout).

Members run as concurrent tasks: remote ones over async HTTP, local ones through their model's worker
thread, where members that share a model are batched into one generate call. A failed, timed-out or
cancelled member is a MemberOutput with ``ok=False`` and a reason; nothing a member does raises here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from ..backends import ModelHandle, load_model
from ..errors import WorkbenchError
from ..specs import Member
from ..types import Failure, GenerateConfig, Message
from ..events import Event, MemberDone, MemberToken
from ..records import MemberOutput

Emit = Callable[[Event], None]


async def load_members(members: list[Member]) -> list[ModelHandle | Failure]:
    """Load each member's model off the event loop; a model that cannot load becomes a Failure.

    Models are kept loaded after the run (``workbench.unload`` frees them); members that share a model
    get handles on one copy.
    """

    async def one(m: Member) -> ModelHandle | Failure:
        try:
            return await asyncio.to_thread(load_model, m.model, keep=True)  # warm for the next run
        except WorkbenchError as exc:
            return Failure(str(exc), getattr(exc, "kind", "config"), m.model.name)

    return list(await asyncio.gather(*(one(m) for m in members)))


def member_config(base: GenerateConfig, member: Member, timeout_s: float | None) -> GenerateConfig:
    """The run's settings with the member's own overrides and the per-member timeout."""
    return base.replace(temperature=member.temperature, top_p=member.top_p, max_new_tokens=member.max_new_tokens,
                        timeout_s=timeout_s)


async def fan_out(members: list[Member], backends: list[ModelHandle | Failure],
                  messages_for: Callable[[int], list[Message]], config: GenerateConfig, *, round_no: int = 1,
                  timeout_s: float | None = None, emit: Emit | None = None,
                  t0: float | None = None) -> list[MemberOutput]:
    """Ask every member concurrently; return their outputs in pool order.

    Args:
        members: the pool.
        backends: each member's loaded model, or the Failure that kept it from loading.
        messages_for: index -> the chat that member gets (persona and, in debate, the others' answers).
        config: the run's generation settings.
        round_no: which round this is (1 = the pool phase).
        timeout_s: per-member wall-clock limit.
        emit: receives MemberToken and MemberDone events.
        t0: the run's start (perf_counter), for timeline offsets.
    """
    t0 = time.perf_counter() if t0 is None else t0
    emit = emit or (lambda _e: None)
    outputs: list[MemberOutput | None] = [None] * len(members)

    async def run(i: int) -> None:
        m, backend = members[i], backends[i]
        start = time.perf_counter() - t0
        if isinstance(backend, Failure):
            out = MemberOutput(i, m.label, round_no, False, reason=backend.reason, kind=backend.kind,
                               start_s=start, end_s=start)
        else:
            cfg = member_config(config, m, timeout_s)
            try:
                r = await backend.complete(messages_for(i), cfg,
                                           on_text=lambda t: emit(MemberToken(i, round_no, t)), drop_images=True)
            except asyncio.CancelledError:
                end = time.perf_counter() - t0
                outputs[i] = MemberOutput(i, m.label, round_no, False, reason="cancelled", kind="cancelled",
                                          latency_s=end - start, start_s=start, end_s=end)
                raise
            end = time.perf_counter() - t0
            if r.ok:
                out = MemberOutput(i, m.label, round_no, True, r.text, ttft_s=r.ttft_s, latency_s=r.latency_s,
                                   start_s=start, end_s=end, prompt_tokens=r.usage.prompt_tokens,
                                   completion_tokens=r.usage.completion_tokens, cost_usd=r.usage.cost_usd,
                                   finish_reason=r.finish_reason, notes=list(r.notes))
            else:
                out = MemberOutput(i, m.label, round_no, False, r.partial_text, reason=r.reason, kind=r.kind,
                                   latency_s=r.latency_s, start_s=start, end_s=end)
        outputs[i] = out
        emit(MemberDone(out))

    tasks = [asyncio.ensure_future(run(i)) for i in range(len(members))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:  # on cancellation, stop every in-flight generation (local rows included)
            t.cancel()
    return [o for o in outputs if o is not None]
