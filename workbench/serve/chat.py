"""The chat route's job: a request read and checked, its images charged and decoded, its run started, and the
answer given whole or streamed (``pump``). One request is one fusion run (``fuse_stream``)."""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..context import RunContext
from ..events import RunStart
from ..fusion.engine import fuse_stream
from ..policy import Policy
from ..storage import RunStore
from . import protocol as P
from . import responses as R
from .bodies import BODIES, read_body
from .pump import Pump, sse, until_done
from .targets import Target


async def chat(request: Request, policy: Policy, store: RunStore):
    """``POST /chat/completions``: the run's answer (JSON), or its stream; errors raise ``APIError`` or a
    ``WorkbenchError`` (the app maps both to OpenAI error objects)."""
    charged = [0]
    try:
        return await _chat_request(request, policy, store, charged)
    finally:  # the body (and what was decoded from it) is gone once the response is made or streaming
        BODIES.release(charged[0])


async def _chat_request(request: Request, policy: Policy, store: RunStore, charged: list[int]):
    raw = await read_body(request, policy.limits.max_request_bytes, policy.limits.max_bodies_bytes, charged,
                          policy.limits.body_read_s)
    req = P.parse_request(raw)
    target = Target(req.model, policy)
    conv = P.conversation(req)
    policy.check_image_count(len(conv.images))  # before fetching or decoding any of them (413)
    images = []
    for src in conv.images:
        if isinstance(src, str):
            if not policy.allow_image_urls:
                raise P.APIError(400, "image URLs are not fetched on this server: send the image as a data URL "
                                      "(data:image/png;base64,...)", "image_url_not_allowed", "messages")
            src = await P.fetch_image(src, guarded=not policy.allow_private_hosts)
        images.append(src)
    context = RunContext.for_api(request, policy, store)
    # limits charged before any decoding (runs in flight, bytes, format, pixels from headers), then decoded in
    # a bounded slot, off the event loop
    images = await asyncio.to_thread(policy.read_images, images, context.quota)
    prompt = await asyncio.to_thread(P.build_prompt, conv, images)
    settings = target.settings(req, policy)
    pool, judge, mode = target.call()
    events = fuse_stream(prompt, pool, judge, mode, settings, context=context)
    pump = Pump(events)
    try:
        first = await pump.next()  # the call's checks run here: an error is still an HTTP status
    except BaseException:
        await pump.close()
        raise
    assert isinstance(first, RunStart), first
    cid, created = f"chatcmpl-{first.run_id}", R.now()
    if req.stream:
        return StreamingResponse(sse(pump, req, target, cid, created, settings, first.members),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        result = await until_done(pump, request)
    finally:  # a run still going here lost its client
        await pump.close("client_gone")
    if result is None:  # the client went away: the run was cancelled and stored as interrupted
        return JSONResponse(P.APIError(499, "the client closed the request", "client_closed").body(), 499)
    R.raise_if_failed(result)
    content, finish = R.final(result, target.plain, target.mode, req.stops)
    return JSONResponse(R.completion(cid, req.model, created, content, finish, result))
