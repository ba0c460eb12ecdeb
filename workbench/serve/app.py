"""The ``/v1`` API: fused models (``[fusions.NAME]``) and the host's plain models behind OpenAI's
chat-completions protocol, so that any OpenAI client, agent or evaluation harness can call a fused pool.

One request is one fusion run (``fuse_stream``), checked by the same ``Policy`` as the web app, counted in the
same runs-in-flight limits, stored in the same RunStore (origin "api") and so visible in History and
re-judgeable. A client that goes away cancels its run (members and judge), which is then stored as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (BusyError, ConfigError, InputError, PolicyError, TooLargeError, UnknownModelError,
                      WorkbenchError)
from ..events import (Event, JudgeStart, JudgeToken, Loading, MemberDone, MemberToken, RoundEnd, RoundStart, RunDone,
                      RunStart, VerdictEvent)
from ..fusion.engine import TIMED_OUT, fuse_stream
from ..fusion.modes import Mode, get_mode
from ..answers import letters
from ..policy import Policy, quota_key
from ..records import FusionResult
from ..settings import FusionSettings
from ..shutdown import ShuttingDownError
from ..specs import FusionSpec, Registry
from ..store import RunStore
from . import protocol as P
from .streaming import AnswerStream, StopFilter

log = logging.getLogger("workbench.serve")

#: seconds without an event after which a stream sends an SSE comment (proxies keep it open; a gone client shows)
KEEPALIVE_S = 10.0
#: how often a non-streaming request checks whether its client is still there
DISCONNECT_POLL_S = 0.25


def create_api(policy: Policy | None = None, store: RunStore | None = None, api_key_env: str | None = None) -> FastAPI:
    """The API as an ASGI app whose routes are ``/models`` and ``/chat/completions``: mount it at ``/v1``.

    Args:
        policy: what callers may name, reach and spend (default ``Policy.for_host()``); its registry holds the
            fused models (``[fusions.NAME]``) and plain models served.
        store: where every request's run is kept (default: the user's RunStore, the one History shows).
        api_key_env: the environment variable holding the bearer token clients must send; None: no auth.

    Raises:
        ConfigError: the key variable is unset or empty, or a fused model does not resolve.
    """
    policy = policy or Policy.for_host()
    store = store or RunStore()
    token = api_token(api_key_env)
    check_fusions(policy.registry)
    api = FastAPI(title="Fusion Workbench API", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.policy, api.state.store = policy, store

    @api.exception_handler(P.APIError)
    async def _api_error(_request: Request, exc: P.APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(P.APIError(exc.status_code, str(exc.detail), code).body(), status_code=exc.status_code)

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug of ours: logged here, never a traceback out
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(P.APIError(500, "the server failed on this request (its log has why)",
                                       "server_error").body(), status_code=500)

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        return JSONResponse(P.APIError(400, str(exc.errors()[:1]), "invalid_value").body(), status_code=400)

    def check_auth(request: Request) -> None:
        if not bearer_ok(request.headers, token):
            raise P.APIError(401, BAD_KEY, "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    @api.get("/models")
    async def list_models(request: Request):
        check_auth(request)
        rows = await asyncio.to_thread(_model_rows, policy)
        return {"object": "list", "data": rows}

    @api.get("/models/{model_id:path}")
    async def get_model(model_id: str, request: Request):
        check_auth(request)
        for row in await asyncio.to_thread(_model_rows, policy):
            if row["id"] == model_id:
                return row
        raise P.APIError(404, f"the model {model_id!r} does not exist on this server", "model_not_found", "model")

    @api.post("/chat/completions")
    async def chat_completions(request: Request):
        check_auth(request)
        try:
            return await _chat(request, policy, store)
        except P.APIError:
            raise
        except WorkbenchError as exc:
            raise _as_api_error(exc) from None

    return api


BAD_KEY = "missing or invalid API key: send Authorization: Bearer <key>"


def api_token(api_key_env: str | None) -> str | None:
    """The bearer token programmatic clients must send (the value of ``api_key_env``); None: no key asked.

    Raises:
        ConfigError: the variable is named but unset or empty (a server that meant to be keyed never starts open).
    """
    if not api_key_env:
        return None
    token = os.environ.get(api_key_env, "").strip()
    if not token:
        raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set (or empty); "
                          "set it to the token clients must send")
    return token


def bearer_ok(headers: Any, token: str | None) -> bool:
    """Whether a request's ``Authorization: Bearer`` header carries ``token`` (always, when no token is set)."""
    if token is None:
        return True
    scheme, _, given = (headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def check_fusions(registry: Registry) -> None:
    """Every fused model's members and judge resolve and its settings are valid (a server checks at start).

    Raises:
        ConfigError: naming the fused model and what is wrong with it.
    """
    for f in registry.fusions.values():
        try:
            mode = get_mode(f.mode)
            for m in f.pool:
                registry.member(m)
            if mode.judged and not f.judge:
                raise ConfigError(f"mode {f.mode} needs a judge")
            if f.judge:
                registry.member(f.judge)
            FusionSettings(**f.settings)
        except ConfigError as exc:
            raise ConfigError(f"fused model {f.name!r}: {exc}") from None


# ---- /models -----------------------------------------------------------------------------------------------


def _usable(policy: Policy, names: list[str]) -> bool:
    """Whether callers here may use every model named (public mode: only the host's, downloaded ones)."""
    try:
        for n in names:
            policy.member(n)
    except WorkbenchError:
        return False
    return True


def _model_rows(policy: Policy) -> list[dict[str, Any]]:
    reg = policy.registry
    rows = []
    for f in reg.fusions.values():
        if _usable(policy, [*f.pool, *([f.judge] if f.judge else [])]):
            rows.append({"id": f.name, "object": "model", "created": 0, "owned_by": "workbench-fusion",
                         "fusion": f.to_dict()})
    for spec in reg.models.values():
        if _usable(policy, [spec.name]):
            rows.append({"id": spec.name, "object": "model", "created": 0, "owned_by": f"workbench-{spec.backend}",
                         "workbench": {"backend": spec.backend, "vision": spec.vision, "noise": spec.is_noise,
                                       "description": spec.description}})
    return rows


# ---- /chat/completions ---------------------------------------------------------------------------------------


def _as_api_error(exc: WorkbenchError) -> P.APIError:
    message = str(exc)
    if isinstance(exc, TooLargeError):
        return P.APIError(413, message, "request_too_large")
    if isinstance(exc, BusyError):
        return P.APIError(429, message, "rate_limit_exceeded", headers={"Retry-After": "1"})
    if isinstance(exc, ShuttingDownError):
        return P.APIError(503, message, "shutting_down", headers={"Retry-After": "5"})
    if isinstance(exc, UnknownModelError):
        return P.APIError(404, message, "model_not_found", "model")
    if isinstance(exc, PolicyError):
        return P.APIError(403, message, "not_allowed")
    if isinstance(exc, (InputError, ConfigError)):
        return P.APIError(400, message, "invalid_value")
    return P.APIError(500, message, "server_error")


class _BodyBudget:
    """Request bodies held in memory at once, in bytes (``Limits.max_bodies_bytes``): a body is charged as it is
    read (its declared length up front) and released when its request is done; past the budget: 429.

    Large bodies (over ``SMALL`` bytes) may fill only seven eighths of the budget: the rest is kept for small ones,
    so that clients sending huge bodies cannot make an ordinary request wait."""

    SMALL = 1_000_000

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0

    def charge(self, n: int, budget: int, body: int = 0) -> None:
        """Charge ``n`` more bytes of a body that will then be ``body`` bytes long."""
        if self.held + n > (budget if max(body, n) <= self.SMALL else budget - budget // 8):
            raise P.APIError(429, "the server is reading other large requests; try again in a moment",
                             "rate_limit_exceeded", headers={"Retry-After": "1"})
        self.held += n  # one event loop: no lock needed
        self.peak = max(self.peak, self.held)

    def release(self, n: int) -> None:
        self.held -= n


BODIES = _BodyBudget()


async def _read_body(request: Request, limit: int, budget: int, charged: list[int], within_s: float) -> bytes:
    """The body, at most ``limit`` bytes (413), charged to ``BODIES`` as it arrives; ``charged[0]`` says how much
    (the caller releases it). A body that has not all arrived ``within_s`` seconds after the headers is a 408 and
    the connection is closed (a client sending a byte every few seconds holds its share of the budget no longer)."""
    try:
        async with asyncio.timeout(within_s):
            return await _read_body_now(request, limit, budget, charged)
    except TimeoutError:
        raise P.APIError(408, f"the request body did not arrive within {within_s:g} s", "request_timeout",
                         headers={"Connection": "close"}) from None


async def _read_body_now(request: Request, limit: int, budget: int, charged: list[int]) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise P.APIError(413, f"the request body is {int(declared):,} bytes; this server takes at most {limit:,}",
                         "request_too_large")
    if declared and declared.isdigit():
        BODIES.charge(int(declared), budget, int(declared))
        charged[0] += int(declared)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise P.APIError(413, f"the request body is over this server's limit of {limit:,} bytes",
                             "request_too_large")
        if len(body) > charged[0]:  # chunked, or longer than declared
            BODIES.charge(len(body) - charged[0], budget, len(body))
            charged[0] = len(body)
    return bytes(body)


class _Target:
    """What a request's model name runs: a fused model, or one plain model (a pool of one, no judge)."""

    def __init__(self, name: str, policy: Policy):
        self.name = name
        self.fusion: FusionSpec | None = policy.registry.fusions.get(name)
        if self.fusion is None and name not in policy.registry.models:
            if policy.public or not _usable(policy, [name]):
                raise P.APIError(404, f"the model {name!r} does not exist on this server; GET /v1/models lists "
                                      "them", "model_not_found", "model")
        self.mode: Mode = get_mode(self.fusion.mode if self.fusion else "vote")

    @property
    def plain(self) -> bool:
        return self.fusion is None

    def call(self) -> tuple[list[str], str | None, str]:
        if self.fusion is None:
            return [self.name], None, "vote"
        return list(self.fusion.pool), self.fusion.judge, self.fusion.mode

    def settings(self, req: P.ChatRequest, policy: Policy) -> FusionSettings:
        f = self.fusion
        base = FusionSettings(**(f.settings if f else {}))
        cap = min(policy.limits.max_new_tokens, f.max_tokens or policy.limits.max_new_tokens) if f else \
            policy.limits.max_new_tokens
        if req.limit is not None and req.limit > cap:
            raise P.APIError(400, f"max_tokens {req.limit} is over this model's limit of {cap}", "invalid_value",
                             "max_tokens")
        changes: dict[str, Any] = {"answer_schema": P.answer_schema(req.response_format)}
        if req.limit is None and base.max_new_tokens > cap:  # the default, within this server's limit
            changes["max_new_tokens"] = cap
        for key, value in (("max_new_tokens", req.limit), ("temperature", req.temperature), ("top_p", req.top_p),
                           ("seed", req.seed), ("timeout_s", f.timeout_s if f else None),
                           ("blind_members", (req.fusion or {}).get("blind_members"))):
            if value is not None:
                changes[key] = value
        if self.plain:
            changes["rounds"] = 1
        return base.replace(**changes)


def _client(request: Request, policy: Policy) -> tuple[str | None, str | None]:
    """(owner, quota) of a request: on a public server, runs belong to the client's address and count against
    its limit of runs in flight (the page counts the same address); locally runs are shared, as the page's are."""
    if not policy.public:
        return None, None
    host = request.client.host if request.client else "unknown"
    return f"api:{host}", quota_key(host)


async def _chat(request: Request, policy: Policy, store: RunStore):
    charged = [0]
    try:
        return await _chat_body(request, policy, store, charged)
    finally:  # the body (and what was decoded from it) is gone once the response is made or streaming
        BODIES.release(charged[0])


async def _chat_body(request: Request, policy: Policy, store: RunStore, charged: list[int]):
    raw = await _read_body(request, policy.limits.max_request_bytes, policy.limits.max_bodies_bytes, charged,
                           policy.limits.body_read_s)
    req = P.parse_request(raw)
    target = _Target(req.model, policy)
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
    owner, quota = _client(request, policy)
    # limits charged before any decoding (runs in flight, bytes, format, pixels from headers), then decoded in
    # a bounded slot, off the event loop
    images = await asyncio.to_thread(policy.read_images, images, quota)
    prompt = await asyncio.to_thread(P.build_prompt, conv, images)
    settings = target.settings(req, policy)
    pool, judge, mode = target.call()
    events = fuse_stream(prompt, pool, judge, mode, settings, registry=policy.registry, store=store, policy=policy,
                         owner=owner, quota=quota, origin="api")
    pump = _Pump(events)
    try:
        first = await pump.next()  # the call's checks run here: an error is still an HTTP status
    except BaseException:
        await pump.close()
        raise
    assert isinstance(first, RunStart), first
    cid, created = f"chatcmpl-{first.run_id}", P.now()
    if req.stream:
        return StreamingResponse(_sse(pump, req, target, cid, created, settings, first.members),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        result = await _until_done(pump, request)
    finally:
        await pump.close()
    if result is None:  # the client went away: the run was cancelled and stored as interrupted
        return JSONResponse(P.APIError(499, "the client closed the request", "client_closed").body(), 499)
    _raise_if_failed(result)
    content, finish = _final(result, target, req.stops)
    return JSONResponse(P.completion(cid, req.model, created, content, finish, result))


class _Pump:
    """Reads a run's events into a queue from its own task, so that waiting with a timeout (keep-alives) never
    cancels the run's generator; ``close`` stops the run (members and judge are cancelled)."""

    def __init__(self, events: AsyncIterator[Event]):
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

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        with contextlib.suppress(BaseException):
            await self.events.aclose()


async def _until_done(pump: _Pump, request: Request) -> FusionResult | None:
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


def _raise_if_failed(result: FusionResult) -> None:
    """504 for a run past its time limit, 503 when no member answered (504 if they all timed out), 400 when every
    member was skipped (an image none of them can see); a run with some answers, a failed judge or a fallback
    still answers (``fusion.degraded``)."""
    fusion = P.fusion_object(result)
    if result.interrupted.startswith(TIMED_OUT):
        raise P.APIError(504, f"the fused model did not finish in time: {result.interrupted}", "timeout",
                         fusion=fusion)
    if result.interrupted:
        raise P.APIError(503, f"the run was interrupted: {result.interrupted}", "interrupted", fusion=fusion)
    if result.outputs and all(o.skipped for o in result.outputs):  # the request's image, not the members, failed
        raise P.APIError(400, "no member of this model can see images, and members that cannot are skipped; "
                              "send the text alone, or "
                              '"fusion": {"blind_members": "tell"} to have them answer from the text and say so',
                         "no_vision_member", "messages", fusion=fusion)
    if not result.final_answer and not any(o.ok for o in result.outputs):
        failed = [o for o in result.outputs if not o.ok]
        timeouts = failed and all(o.kind == "timeout" for o in failed)
        reasons = "; ".join(result.failure_reasons) or "no member answered"
        raise P.APIError(504 if timeouts else 503, f"every member failed: {reasons}",
                         "members_timed_out" if timeouts else "all_members_failed", fusion=fusion)
    if not result.final_answer:
        raise P.APIError(503, "; ".join(result.failure_reasons) or "no answer", "no_answer", fusion=fusion)


def _final(result: FusionResult, target: _Target, stops: list[str]) -> tuple[str, str]:
    """The answer and its finish reason: the member's own text for a plain model, else the fused answer."""
    if target.plain:
        out = result.outputs[0]
        text, finish = out.text, "length" if out.finish_reason == "length" else "stop"
    else:
        text, finish = result.final_answer, "stop"
        v = result.verdict
        if v is not None and v.valid and v.winner is not None and not target.mode.needs_answer:
            winner = next((o for o in result.outputs if o.member == v.winner), None)
            if winner is not None and winner.finish_reason == "length":
                finish = "length"
    text, stopped = P.apply_stop(text, stops)
    return text, "stop" if stopped else finish


def _judge_writes_answer(mode: Mode) -> bool:
    return mode.needs_answer and type(mode).final_answer is Mode.final_answer


# ---- streaming ---------------------------------------------------------------------------------------------


def _sse_data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n\n"


async def _sse(pump: _Pump, req: P.ChatRequest, target: _Target, cid: str, created: int,
               settings: FusionSettings, labels: list[str]) -> AsyncIterator[bytes]:
    """The run as ``chat.completion.chunk`` events: the role first; progress chunks (empty delta plus a
    ``fusion`` field, which plain clients skip); the answer's text as deltas (a plain model's tokens as they
    come, a judge-written answer as the judge writes it, a best-of pick when the verdict is in); the finish
    chunk with the whole ``fusion`` object; usage when asked; ``[DONE]``. A failure after the stream started is
    an ``error`` event, as OpenAI's servers send."""
    model = req.model
    live = not target.plain and _judge_writes_answer(target.mode) and settings.swap_k == 1
    answer: AnswerStream | None = None
    out = StopFilter(req.stops)
    step = lambda delta=None, finish=None, **extra: _sse_data(  # noqa: E731
        P.chunk(cid, model, created, delta, finish, **extra))

    def progress(**info: Any) -> bytes | None:
        return step(fusion=info) if req.progress else None

    try:
        yield step({"role": "assistant", "content": ""})
        result: FusionResult | None = None
        while result is None:
            try:
                event = await pump.next(KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if event is None:
                raise P.APIError(500, "the run ended without a result", "server_error")
            piece: bytes | None = None
            if isinstance(event, Loading):
                piece = progress(event="loading", models=event.models)
            elif isinstance(event, RoundStart):
                piece = progress(event="round_start", round=event.round)
            elif isinstance(event, MemberToken):
                if target.plain and (text := out.push(event.text)):
                    piece = step({"content": text})
            elif isinstance(event, MemberDone):
                o = event.output
                piece = progress(event="member_done", round=o.round, member=o.label, ok=o.ok, skipped=o.skipped,
                                 finish_reason=o.finish_reason, completion_tokens=o.completion_tokens,
                                 latency_s=round(o.latency_s, 4), error=None if o.ok else o.reason)
            elif isinstance(event, RoundEnd):
                piece = progress(event="round_end", round=event.round, agreed=event.agreed)
            elif isinstance(event, JudgeStart):
                piece = progress(event="judge_start", ordering=event.attempt)
                if live and answer is None:
                    ids = letters(len(event.order))
                    answer = AnswerStream(lambda obj, ids=ids: target.mode.validate({**obj, "answer": "x"}, ids))
            elif isinstance(event, JudgeToken):
                if answer is not None and (text := out.push(answer.feed(event.text))):
                    piece = step({"content": text})
            elif isinstance(event, VerdictEvent):
                v = event.verdict
                winner = labels[v.winner] if v.winner is not None and v.winner < len(labels) else None
                piece = progress(event="verdict", valid=v.valid, winner=winner, **P.decision(v, labels))
            elif isinstance(event, RunDone):
                result = event.result
            if piece is not None:
                yield piece
        try:
            _raise_if_failed(result)
        except P.APIError as exc:
            yield _sse_data(exc.body())
            yield b"data: [DONE]\n\n"
            return
        content, finish = _final(result, target, req.stops)
        tail = out.flush()
        if tail:
            yield step({"content": tail})
        if content.startswith(out.sent):
            if content[len(out.sent):]:
                yield step({"content": content[len(out.sent):]})
        else:  # what was streamed live is not the verdict's answer (a judge reply thrown away): say so
            log.warning("run %s: the streamed answer differs from the verdict's; sent a correction", result.run_id)
            yield step(fusion={"event": "answer_replaced", "content": content})
        yield step(None, finish, fusion=P.fusion_object(result))
        if req.include_usage:
            yield _sse_data({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                             "choices": [], "usage": P.usage(result)})
        yield b"data: [DONE]\n\n"
    except P.APIError as exc:
        yield _sse_data(exc.body())
        yield b"data: [DONE]\n\n"
    except WorkbenchError as exc:
        yield _sse_data(_as_api_error(exc).body())
        yield b"data: [DONE]\n\n"
    finally:  # also when the client went away (the response task is cancelled): cancel the run
        await pump.close()


def mount_routes(policy: Policy, store: RunStore, api_key_env: str | None = None) -> list:
    """Starlette routes that put the API at ``/v1`` inside another app (the Gradio page)."""
    from starlette.routing import Mount

    return [Mount("/v1", app=create_api(policy, store, api_key_env))]


def create_server_app(policy: Policy | None = None, store: RunStore | None = None,
                      api_key_env: str | None = None) -> FastAPI:
    """The standalone server's app (``workbench serve``): the API at ``/v1`` and ``GET /health``."""
    policy = policy or Policy.for_host()
    app = FastAPI(title="Fusion Workbench", docs_url=None, redoc_url=None, openapi_url=None,
                  routes=mount_routes(policy, store or RunStore(), api_key_env))

    @app.get("/health")
    async def health():
        from ..shutdown import RUNS

        return {"status": "draining" if RUNS.draining else "ok", "runs_in_flight": RUNS.in_flight}

    return app
