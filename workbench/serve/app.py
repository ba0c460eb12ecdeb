"""The ``/v1`` API: fused models (``[fusions.NAME]``) and the host's plain models behind OpenAI's
chat-completions protocol, so that any OpenAI client, agent or evaluation harness can call a fused pool.

This module is the app only: its routes, the key they all ask for (declared once, on the router), and how errors
become OpenAI error objects. What a route does lives beside it: ``chat`` (a request to a run), ``pump`` (the run's
events, whole or streamed), ``targets`` (what a model name runs), ``bodies`` (reading request bodies),
``protocol`` (the wire format in, errors), ``responses`` (the wire format out), ``auth`` (the key).

One request is one fusion run, checked by the same ``Policy`` as the web app, counted in the same runs-in-flight
limits, stored in the same RunStore (origin "api") and so visible in History and re-judgeable.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import WorkbenchError
from ..policy import Policy
from ..storage import RunStore
from . import protocol as P
from .auth import BAD_KEY, api_token, bearer_ok
from .chat import chat
from .targets import check_fusions, model_rows

log = logging.getLogger("workbench.serve")


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

    def keyed(request: Request) -> None:  # every route of the router asks for the key
        if not bearer_ok(request.headers, token):
            raise P.APIError(401, BAD_KEY, "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(dependencies=[Depends(keyed)])

    @router.get("/models")
    async def list_models():
        return {"object": "list", "data": await asyncio.to_thread(model_rows, policy)}

    @router.get("/models/{model_id:path}")
    async def get_model(model_id: str):
        for row in await asyncio.to_thread(model_rows, policy):
            if row["id"] == model_id:
                return row
        raise P.APIError(404, f"the model {model_id!r} does not exist on this server", "model_not_found", "model")

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        return await chat(request, policy, store)

    api = FastAPI(title="Fusion Workbench API", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.policy, api.state.store = policy, store
    api.include_router(router)
    _errors(api)
    return api


def _errors(api: FastAPI) -> None:
    """Every error an OpenAI error object: ours with their status, FastAPI's and Starlette's mapped, a workbench
    error by its kind (``protocol.as_api_error``), anything else a 500 whose detail stays in the server's log."""

    @api.exception_handler(P.APIError)
    async def _api_error(_request: Request, exc: P.APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @api.exception_handler(WorkbenchError)
    async def _workbench_error(_request: Request, exc: WorkbenchError):
        err = P.as_api_error(exc)
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(P.APIError(exc.status_code, str(exc.detail), code).body(), status_code=exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        return JSONResponse(P.APIError(400, str(exc.errors()[:1]), "invalid_value").body(), status_code=400)

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug of ours: logged here, never a traceback out
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(P.APIError(500, "the server failed on this request (its log has why)",
                                       "server_error").body(), status_code=500)


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
