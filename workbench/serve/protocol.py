"""The OpenAI chat-completions wire format coming in: requests checked and turned into a Prompt, and OpenAI error
objects with the status each workbench error maps to (what goes out is ``responses``).

Only what a fused model can honour is accepted: ``n`` > 1, log-probabilities and tools are refused with a 400 that
says so (a harness that needs them must not get silent garbage); unknown extra fields are ignored, as OpenAI's
own server ignores them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import BusyError, ConfigError, InputError, PolicyError, TooLargeError, UnknownModelError, WorkbenchError
from ..shutdown import ShuttingDownError
from ..types import Prompt

#: the most bytes of one image fetched from a URL
MAX_IMAGE_URL_BYTES = 20_000_000


class APIError(Exception):
    """An error to answer as an OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 408: "timeout", 413: "invalid_request_error", 429: "rate_limit_error",
             500: "server_error", 503: "service_unavailable", 504: "timeout"}

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 fusion: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.fusion, self.headers = fusion, headers or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.TYPES.get(self.status, "server_error"),
                               "param": self.param, "code": self.code}
        out: dict[str, Any] = {"error": err}
        if self.fusion is not None:
            out["fusion"] = self.fusion
        return out


# ---- requests ---------------------------------------------------------------------------------------------


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


#: ``fusion.progress`` values that write the run's progress in words (besides true and false)
PROGRESS_TEXT = ("reasoning", "content")


class ChatRequest(BaseModel):
    """The fields of ``POST /v1/chat/completions`` that a fused model reads (others are ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    #: extension options: {"progress": false} drops progress chunks, {"progress": "reasoning" | "content"} also says
    #: the run's progress in words a plain client shows (``delta.reasoning_content``, or ``delta.content`` inside
    #: ``<think>...</think>`` before the answer); {"blind_members": "skip" | "tell"}: what members that cannot see
    #: images do with an image prompt (``FusionSettings.blind_members``; default the model's)
    fusion: dict[str, Any] | None = None

    @property
    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stops(self) -> list[str]:
        return [s for s in ([self.stop] if isinstance(self.stop, str) else (self.stop or [])) if s]

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    @property
    def progress(self) -> bool:
        """Whether progress chunks (an empty delta and a ``fusion`` field) are sent."""
        return (self.fusion or {}).get("progress", True) is not False

    @property
    def progress_text(self) -> str | None:
        """Where the run's progress is also written in words: "reasoning", "content" or None."""
        value = (self.fusion or {}).get("progress", True)
        return value if value in PROGRESS_TEXT else None


def parse_request(raw: bytes) -> ChatRequest:
    """The request body, checked; raises APIError 400 naming the field that is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}", "invalid_json") from None
    except RecursionError:
        raise APIError(400, "the request body is nested too deeply", "invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", "invalid_json")
    try:
        req = ChatRequest.model_validate(data)
    except RecursionError:
        raise APIError(400, "the request body is nested too deeply", "invalid_value") from None
    except ValidationError as exc:
        e = exc.errors()[0]
        param = ".".join(str(p) for p in e.get("loc", ()))
        raise APIError(400, f"{param or 'body'}: {e.get('msg')}", "invalid_value", param or None) from None
    progress = (req.fusion or {}).get("progress", True)
    if not isinstance(progress, bool) and progress not in PROGRESS_TEXT:
        raise APIError(400, f"fusion.progress must be true, false, {' or '.join(map(repr, PROGRESS_TEXT))}; "
                            f"got {progress!r}", "invalid_value", "fusion.progress")
    if (req.n or 1) > 1:
        raise APIError(400, "n > 1 is not supported: a fused model gives one answer per request (send n requests)",
                       "unsupported_parameter", "n")
    if req.logprobs or req.top_logprobs:
        raise APIError(400, "log-probabilities are not available from a fused model", "unsupported_parameter",
                       "logprobs")
    if req.tools:
        raise APIError(400, "tools (function calling) are not supported by a fused model", "unsupported_parameter",
                       "tools")
    return req


def answer_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks for (None for plain text); raises APIError 400 when malformed."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return schema
        raise APIError(400, "response_format.json_schema.schema must be a JSON schema object", "invalid_value",
                       "response_format")
    raise APIError(400, "response_format.type must be text, json_object or json_schema", "invalid_value",
                   "response_format")


@dataclass
class Conversation:
    """A request's messages as the workbench takes them: the last user turn, its images, the turns before it."""

    text: str
    images: list[Any]  #: image sources (bytes from data URLs, or http(s) URLs to fetch)
    system: str | None
    history: list[dict[str, str]]


def conversation(req: ChatRequest) -> Conversation:
    """Split the messages: system and developer messages become the system prompt, the last message (which must
    be the user's) the prompt, earlier user and assistant turns the history. Images from every user turn go with
    the prompt, in order. Raises APIError 400 for what cannot be used."""
    system: list[str] = []
    turns: list[tuple[str, str, list[Any]]] = []
    for n, m in enumerate(req.messages):
        where = f"messages.{n}"
        if m.role in ("tool", "function"):
            raise APIError(400, f"{where}: tool messages are not supported by a fused model",
                           "unsupported_parameter", where)
        text, images = _content(m.content, where)
        if m.role in ("system", "developer"):
            if images:
                raise APIError(400, f"{where}: a system message cannot hold images", "invalid_value", where)
            system.append(text)
        else:
            if m.role == "assistant" and images:
                raise APIError(400, f"{where}: an assistant message cannot hold images", "invalid_value", where)
            turns.append((m.role, text, images))
    if not turns or turns[-1][0] != "user":
        raise APIError(400, "the last message must be the user's (role \"user\")", "invalid_value", "messages")
    role, text, _ = turns[-1]
    images = [img for _, _, imgs in turns for img in imgs]
    if not text.strip() and not images:
        raise APIError(400, "the prompt is empty: the last user message has no text and no image", "invalid_value",
                       "messages")
    return Conversation(text, images, "\n\n".join(s for s in system if s) or None,
                        [{"role": r, "text": t} for r, t, _ in turns[:-1]])


def _content(content: str | list[ContentPart] | None, where: str) -> tuple[str, list[Any]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts, images = [], []
    for k, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "image_url":
            url = part.image_url.url if isinstance(part.image_url, ImageURL) else part.image_url
            if not url:
                raise APIError(400, f"{where}.content.{k}: image_url needs a url", "invalid_value", where)
            images.append(_image_source(url, f"{where}.content.{k}"))
        else:
            raise APIError(400, f"{where}.content.{k}: content parts of type {part.type!r} are not supported "
                                "(text and image_url are)", "unsupported_parameter", where)
    return "\n".join(t for t in texts if t), images


def _image_source(url: str, where: str) -> Any:
    if url.startswith("data:"):
        head, sep, payload = url.partition(",")
        if not sep or ";base64" not in head:
            raise APIError(400, f"{where}: a data URL image must be base64 (data:image/png;base64,...)",
                           "invalid_image", where)
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise APIError(400, f"{where}: the data URL is not valid base64", "invalid_image", where) from None
    if url.startswith(("http://", "https://")):
        return url
    raise APIError(400, f"{where}: an image URL must be a data: URL or http(s)", "invalid_image", where)


async def fetch_image(url: str, guarded: bool, timeout_s: float = 20.0) -> bytes:
    """Download one image (the bytes only; ``Prompt`` validates them). ``guarded``: a public server, so the URL
    may reach public addresses only, without redirects (``workbench.backends.egress``)."""
    from ..backends.sdk_http import sdk_http, sdk_timeout
    from ..errors import PolicyError

    # the openai SDK's HTTP library (httpx or httpx2): one library for the guarded and the plain client
    http = sdk_http()
    timeout = sdk_timeout(timeout_s, 10.0)
    if guarded:
        from ..backends.egress import guarded_http_client

        client = guarded_http_client(timeout)
    else:
        client = http.AsyncClient(timeout=timeout, follow_redirects=True)
    try:
        async with client, client.stream("GET", url) as r:
            if r.status_code != 200:
                raise InputError(f"fetching the image {url[:100]} answered HTTP {r.status_code}")
            data = bytearray()
            async for piece in r.aiter_bytes():
                data += piece
                if len(data) > MAX_IMAGE_URL_BYTES:
                    raise InputError(f"the image at {url[:100]} is over {MAX_IMAGE_URL_BYTES // 1_000_000} MB")
            return bytes(data)
    except PolicyError as exc:
        raise InputError(f"the image URL {url[:100]} cannot be fetched from this server: {exc}") from None
    except (http.HTTPError, http.InvalidURL) as exc:  # InvalidURL is no HTTPError
        raise InputError(f"cannot fetch the image {url[:100]}: {type(exc).__name__}") from None


def build_prompt(conv: Conversation, images: list[bytes]) -> Prompt:
    """The Prompt (images decoded and checked here: call it off the event loop)."""
    return Prompt(conv.text, images=images, system=conv.system, history=conv.history)


def as_api_error(exc: WorkbenchError) -> APIError:
    """The HTTP status and OpenAI error code of a workbench error a call raised."""
    message = str(exc)
    if isinstance(exc, TooLargeError):
        return APIError(413, message, "request_too_large")
    if isinstance(exc, BusyError):
        return APIError(429, message, "rate_limit_exceeded", headers={"Retry-After": "1"})
    if isinstance(exc, ShuttingDownError):
        return APIError(503, message, "shutting_down", headers={"Retry-After": "5"})
    if isinstance(exc, UnknownModelError):
        return APIError(404, message, "model_not_found", "model")
    if isinstance(exc, PolicyError):
        return APIError(403, message, "not_allowed")
    if isinstance(exc, (InputError, ConfigError)):
        return APIError(400, message, "invalid_value")
    return APIError(500, message, "server_error")
