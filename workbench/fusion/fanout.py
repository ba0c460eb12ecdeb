"""Fan a prompt out to every member of a pool at once; wait only for the slowest (or the timeout).

Members run as concurrent tasks: remote ones over async HTTP, local ones through their model's worker
thread, where members that share a model are batched into one generate call. A failed, timed-out or
cancelled member is a MemberOutput with ``ok=False`` and a reason; nothing a member does raises here.
A member that cannot see images, given an image prompt, is skipped (``kind="no-vision"``) or told plainly that
an image it cannot see was attached (``blind``: the run's ``FusionSettings.blind_members``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..backends import ModelHandle, load_model
from ..backends.base import shown_reason
from ..errors import WorkbenchError
from ..events import Event, MemberDone, MemberToken
from ..records import NO_VISION, MemberOutput
from ..specs import Member
from ..types import Failure, GenerateConfig, Message, TextPart

Emit = Callable[[Event], None]

#: what a member that cannot see images is told under ``blind_members="tell"`` (added to each message that had images)
BLIND_NOTE = ("[The user attached {n} image(s) here, but you cannot see images: they were not sent to you. Answer "
              "from the text alone, and say plainly that you could not see the image; do not describe or guess "
              "what it shows.]")


def tell_blind(messages: list[Message]) -> list[Message]:
    """``messages`` with a plain statement, in each message that holds images, that an image the reader cannot see
    was attached (the images themselves are dropped by the backend)."""
    return [Message(m.role, m.content + (TextPart("\n\n" + BLIND_NOTE.format(n=len(m.images))),)) if m.images
            else m for m in messages]


async def load_members(members: list[Member]) -> list[ModelHandle | Failure]:
    """Load each member's model off the event loop; a model that cannot load becomes a Failure.

    Models are kept loaded after the run (``workbench.unload`` frees them); members that share a model
    get handles on one copy.
    """

    async def one(m: Member) -> ModelHandle | Failure:
        try:
            return await asyncio.to_thread(load_model, m.model, keep=True)  # warm for the next run
        except WorkbenchError as exc:
            kind = getattr(exc, "kind", "config")
            return Failure(shown_reason(m.model, str(exc), "load"), kind, m.model.name)

    return list(await asyncio.gather(*(one(m) for m in members)))


def member_config(base: GenerateConfig, member: Member, timeout_s: float | None) -> GenerateConfig:
    """The run's settings with the member's own overrides and the per-member timeout."""
    return base.replace(temperature=member.temperature, top_p=member.top_p, max_new_tokens=member.max_new_tokens,
                        timeout_s=timeout_s)


async def fan_out(members: list[Member], backends: list[ModelHandle | Failure],
                  messages_for: Callable[[int], list[Message]], config: GenerateConfig, *, round_no: int = 1,
                  timeout_s: float | None = None, emit: Emit | None = None,
                  t0: float | None = None, blind: str = "skip") -> list[MemberOutput]:
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
        blind: a member that cannot see images, given images: "skip" it (not called) or "tell" it so.
    """
    t0 = time.perf_counter() if t0 is None else t0
    emit = emit or (lambda _e: None)
    outputs: list[MemberOutput | None] = [None] * len(members)

    async def run(i: int) -> None:
        m, backend = members[i], backends[i]
        start = time.perf_counter() - t0
        messages = messages_for(i)
        n_images = sum(len(msg.images) for msg in messages)
        sees = None if not n_images or isinstance(backend, Failure) else backend.supports_images
        if isinstance(backend, Failure):
            out = MemberOutput(i, m.label, round_no, False, reason=backend.reason, kind=backend.kind,
                               start_s=start, end_s=start)
        elif sees is False and blind == "skip":
            out = MemberOutput(i, m.label, round_no, False, kind=NO_VISION, start_s=start, end_s=start,
                               saw_images=False, reason=f"{m.model.name} cannot see images, and the prompt has "
                                                        f"{n_images} image(s) (setting: members that cannot see "
                                                        f"images are skipped)")
        else:
            cfg = member_config(config, m, timeout_s)
            if sees is False:  # "tell": it answers from the text, knowing an image it cannot see was attached
                messages = tell_blind(messages)
            try:
                r = await backend.complete(messages, cfg,
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
                                   finish_reason=r.finish_reason, notes=list(r.notes), saw_images=sees)
                if sees is False:
                    out.notes = [n for n in out.notes if not n.startswith("images dropped")] + [
                        f"cannot see images: told that {n_images} image(s) were attached; answered from the text"]
            else:
                out = MemberOutput(i, m.label, round_no, False, r.partial_text, reason=r.reason, kind=r.kind,
                                   latency_s=r.latency_s, start_s=start, end_s=end, saw_images=sees)
        outputs[i] = out
        emit(MemberDone(out))

    tasks = [asyncio.ensure_future(run(i)) for i in range(len(members))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:  # on cancellation, stop every in-flight generation (local rows included)
            t.cancel()
    return [o for o in outputs if o is not None]
