"""The chat route's job: a request read and checked, its images charged and decoded, its run started, and the
answer given whole or streamed (``pump``). One request is one fusion run (``fuse_stream``)."""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..events import RunStart
from ..fusion.engine import fuse_stream
from ..policy import Policy, quota_key
from ..store import RunStore
from . import protocol as P
from . import responses as R
from .bodies import BODIES, read_body
from .pump import Pump, sse, until_done
from .targets import Target


def client_of(request: Request, policy: Policy) -> tuple[str | None, str | None]:
    """(owner, quota) of a request: on a public server, runs belong to the client's address and count against
    its limit of runs in flight (the page counts the same address); locally runs are shared, as the page's are."""
    if not policy.public:
        return None, None
    host = request.client.host if request.client else "unknown"
    return f"api:{host}", quota_key(host)


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
    if len(conv.images) > policy.limits.max_images:  # before fetching or decoding any of them
        raise P.APIError(413, f"{len(conv.images)} images; this server takes at most {policy.limits.max_images}",
                         "request_too_large")
    images = []
    for src in conv.images:
        if isinstance(src, str):
            if not policy.allow_image_urls:
                raise P.APIError(400, "image URLs are not fetched on this server: send the image as a data URL "
                                      "(data:image/png;base64,...)", "image_url_not_allowed", "messages")
            src = await P.fetch_image(src, guarded=not policy.allow_private_hosts)
        images.append(src)
    owner, quota = client_of(request, policy)
    # limits charged before any decoding (runs in flight, bytes, format, pixels from headers), then decoded in
    # a bounded slot, off the event loop
    images = await asyncio.to_thread(policy.read_images, images, quota)
    prompt = await asyncio.to_thread(P.build_prompt, conv, images)
    settings = target.settings(req, policy)
    pool, judge, mode = target.call()
    events = fuse_stream(prompt, pool, judge, mode, settings, registry=policy.registry, store=store, policy=policy,
                         owner=owner, quota=quota, origin="api")
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
