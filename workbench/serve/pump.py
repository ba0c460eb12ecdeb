"""A run's events read from its own task (``Pump``), waited for with a disconnect check, or sent as server-sent
events with keep-alives: the run is cancelled, and stored as interrupted, when its client goes away."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, assert_never

from fastapi import Request

from ..answers import letters
from ..errors import WorkbenchError
from ..events import (JudgeStart, JudgeToken, Loading, MemberDone, MemberToken, Pump, RoundEnd, RoundStart, RunDone,
                      RunStart, VerdictEvent)
from ..records import FusionResult
from ..settings import FusionSettings
from . import protocol as P
from . import responses as R
from .narrate import Narration
from .streaming import AnswerStream, StopFilter
from .targets import Target

log = logging.getLogger("workbench.serve")

#: seconds without an event after which a stream sends an SSE comment (proxies keep it open; a gone client shows)
KEEPALIVE_S = 10.0
#: seconds without an event after which a stream that narrates its progress says the time since the run began
NARRATE_TICK_S = 5.0
#: how often a non-streaming request checks whether its client is still there
DISCONNECT_POLL_S = 0.25


async def until_done(pump: Pump, request: Request) -> FusionResult | None:
    """The run's result, or None when the client disconnected first (the run is then cancelled)."""
    while True:
        try:
            event = await pump.next(DISCONNECT_POLL_S)
        except TimeoutError:
            if await request.is_disconnected():
                return None
            continue
        if event is None:
            raise P.APIError(500, "the run ended without a result", "server_error")
        if isinstance(event, RunDone):
            return event.result


def sse_data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n\n"


async def sse(pump: Pump, req: P.ChatRequest, target: Target, cid: str, created: int,
               settings: FusionSettings, labels: list[str]) -> AsyncIterator[bytes]:
    """The run as ``chat.completion.chunk`` events: the role first; progress chunks (empty delta plus a
    ``fusion`` field, which plain clients skip); the answer's text as deltas (a plain model's tokens as they
    come, a judge-written answer as the judge writes it, a best-of pick when the verdict is in); the finish
    chunk with the whole ``fusion`` object; usage when asked; ``[DONE]``. A failure after the stream started is
    an ``error`` event, as OpenAI's servers send. With ``"fusion": {"progress": "reasoning" | "content"}`` the
    run's progress is also written in words (``narrate``): as ``delta.reasoning_content`` (and ``reasoning``), or
    as ``delta.content`` inside ``<think>...</think>`` before the answer; the answer itself is unchanged."""
    model = req.model
    live = not target.plain and R.judge_writes_answer(target.mode) and settings.swap_k == 1
    answer: AnswerStream | None = None
    out = StopFilter(req.stops)
    step = lambda delta=None, finish=None, **extra: sse_data(  # noqa: E731
        R.chunk(cid, model, created, delta, finish, **extra))

    def progress(**info: Any) -> bytes | None:
        return step(fusion=info) if req.progress else None

    where = req.progress_text
    narration = Narration(None if target.plain else target.mode.name, labels, settings.rounds,
                          target.call()[1]) if where else None
    thinking = answering = False  #: "content": a <think> block is open; the answer has begun

    def said(text: str) -> bytes | None:
        """The progress in words, where the caller asked for it (in "content", only before the answer begins)."""
        nonlocal thinking
        if not text:
            return None
        if where == "reasoning":
            return step({"reasoning_content": text, "reasoning": text})
        if answering:
            return None
        if not thinking:
            thinking, text = True, "<think>\n" + text
        return step({"content": text})

    def answer_step(text: str) -> bytes:
        """A piece of the answer: after the progress, once its <think> block is closed."""
        nonlocal thinking, answering
        if thinking:
            thinking, text = False, "\n</think>\n\n" + text
        answering = True
        return step({"content": text})

    try:
        yield step({"role": "assistant", "content": ""})
        if narration is not None and (first := said(narration.start())):
            yield first
        result: FusionResult | None = None
        while result is None:
            try:
                event = await pump.next(NARRATE_TICK_S if narration is not None else KEEPALIVE_S)
            except TimeoutError:
                yield said(narration.tick()) or b"" if narration is not None else b": keep-alive\n\n"
                continue
            if event is None:
                raise P.APIError(500, "the run ended without a result", "server_error")
            piece: bytes | None = None
            match event:  # one case per kind: a new kind fails type-checking here (assert_never) until handled
                case Loading():
                    piece = progress(event="loading", models=event.models)
                case RoundStart():
                    piece = progress(event="round_start", round=event.round)
                case MemberToken():
                    if target.plain and (text := out.push(event.text)):
                        piece = answer_step(text)
                case MemberDone():
                    o = event.output
                    piece = progress(event="member_done", round=o.round, member=o.label, ok=o.ok,
                                     skipped=o.skipped, finish_reason=o.finish_reason,
                                     completion_tokens=o.completion_tokens, latency_s=round(o.latency_s, 4),
                                     error=None if o.ok else o.reason)
                case RoundEnd():
                    piece = progress(event="round_end", round=event.round, agreed=event.agreed)
                case JudgeStart():
                    piece = progress(event="judge_start", ordering=event.attempt)
                    if live and answer is None:
                        def check(obj: dict[str, Any], ids: list[str] = letters(len(event.order))) -> None:
                            target.mode.validate({**obj, "answer": "x"}, ids)
                        answer = AnswerStream(check)
                case JudgeToken():
                    if answer is not None and (text := out.push(answer.feed(event.text))):
                        piece = answer_step(text)
                case VerdictEvent():
                    v = event.verdict
                    winner = labels[v.winner] if v.winner is not None and v.winner < len(labels) else None
                    piece = progress(event="verdict", valid=v.valid, winner=winner, **R.decision(v, labels))
                case RunDone():
                    result = event.result
                case RunStart():  # the chat route took it before the stream began
                    pass
                case _:
                    assert_never(event)
            if piece is not None:
                yield piece
            if narration is not None and (words := said(narration.see(event))):
                yield words
        try:
            R.raise_if_failed(result)
        except P.APIError as exc:
            yield sse_data(exc.body())
            yield b"data: [DONE]\n\n"
            return
        content, finish = R.final(result, target.plain, target.mode, req.stops)
        tail = out.flush()
        if tail:
            yield answer_step(tail)
        if content.startswith(out.sent):
            if content[len(out.sent):] or thinking:
                yield answer_step(content[len(out.sent):])
        else:  # what was streamed live is not the verdict's answer (a judge reply thrown away): say so
            log.warning("run %s: the streamed answer differs from the verdict's; sent a correction", result.run_id)
            yield step(fusion={"event": "answer_replaced", "content": content})
        yield step(None, finish, fusion=R.fusion_object(result))
        if req.include_usage:
            yield sse_data({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                             "choices": [], "usage": R.usage(result)})
        yield b"data: [DONE]\n\n"
    except P.APIError as exc:
        yield sse_data(exc.body())
        yield b"data: [DONE]\n\n"
    except WorkbenchError as exc:
        yield sse_data(P.as_api_error(exc).body())
        yield b"data: [DONE]\n\n"
    finally:  # also when the client went away (the response task is cancelled): cancel the run
        await pump.close("client_gone")
