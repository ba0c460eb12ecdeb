"""OpenAI-compatible chat-completions endpoints: OpenRouter, vLLM, Ollama, llama.cpp server.

Built on the ``openai`` SDK, which owns retries (429, 5xx, connection errors, with backoff) and timeouts.
The API key is read from the environment variable the spec names, at call time, and never stored.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncIterator
from typing import Any

from ..errors import BackendError, ConfigError, MissingDependencyError, PolicyError
from ..specs import ModelSpec
from ..types import Chunk, GenerateConfig, ImagePart, Message, Usage
from .base import ModelBackend, StreamEnd


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat messages in the OpenAI format; images as data-URL ``image_url`` parts."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role != "user" or not any(isinstance(p, ImagePart) for p in m.content):
            out.append({"role": m.role, "content": m.text})
            continue
        parts: list[dict[str, Any]] = []
        for p in m.content:
            if isinstance(p, ImagePart):
                parts.append({"type": "image_url", "image_url": {"url": p.image.data_url()}})
            elif p.text:
                parts.append({"type": "text", "text": p.text})
        out.append({"role": m.role, "content": parts})
    return out


def portable_schema(schema: Any) -> Any:
    """``schema`` without the length, range and item-count keywords that many endpoints' structured output refuses
    (OpenAI's strict mode among them); the judge's validation still checks ranges."""
    if isinstance(schema, dict):
        return {k: portable_schema(v) for k, v in schema.items()
                if k not in ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems")}
    if isinstance(schema, list):
        return [portable_schema(v) for v in schema]
    return schema


class OpenAICompatModel(ModelBackend):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, spec: ModelSpec, max_retries: int = 2, connect_timeout_s: float = 10.0,
                 max_concurrency: int = 16):
        super().__init__(spec)
        self.max_concurrency = max_concurrency  # requests in flight to this endpoint, per event loop
        if not spec.base_url:
            raise ConfigError(f"{spec.name}: an OpenAI-compatible model needs base_url")
        try:  # imported here, at load time (off the event loop in fusion), not in the first request
            import openai  # noqa: F401

            from .sdk_http import sdk_http

            sdk_http()  # httpx (openai 1.x, 2.x) or httpx2 (openai 3.x)
        except ImportError:
            raise MissingDependencyError("OpenAI-compatible endpoints need the openai package: pip install openai") \
                from None
        self.max_retries = max_retries
        self.connect_timeout_s = connect_timeout_s
        # One client per event loop: httpx connection pools belong to the loop that opened them.
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._no_stream_options = False  #: the server refused stream_options once; stop sending it
        self._no_response_format = False  #: the server refused response_format (a JSON schema) once

    @property
    def supports_images(self) -> bool:
        return self.spec.vision is not False

    def close(self) -> None:
        """Drop the per-loop clients (their connection pools close with their loops)."""
        self._clients.clear()

    def _api_key(self) -> str:
        var = self.spec.api_key_env
        if not var:
            return "not-needed"  # local servers (vLLM, Ollama, llama.cpp) accept any key
        key = os.environ.get(var, "").strip()
        if not key:
            raise ConfigError(f"{self.name} needs an API key: set the environment variable {var}")
        return key

    def _client(self, timeout_s: float):
        from openai import AsyncOpenAI

        from .sdk_http import sdk_timeout

        loop = asyncio.get_running_loop()
        key = self._api_key()
        client = self._clients.get(loop)
        if client is None or client.api_key != key:
            timeout = sdk_timeout(timeout_s, self.connect_timeout_s)  # the SDK's own type, never httpx's
            extra = {}
            if self.spec.untrusted:  # a visitor's URL: see workbench.backends.egress
                from .egress import guarded_http_client

                extra["http_client"] = guarded_http_client(timeout)
            client = AsyncOpenAI(base_url=self.spec.base_url, api_key=key, max_retries=self.max_retries,
                                 timeout=timeout, **extra)
            self._clients[loop] = client
        return client.with_options(timeout=timeout_s)

    async def _stream(self, messages: list[Message], config: GenerateConfig) -> AsyncIterator[Chunk | StreamEnd]:
        import openai

        from .sdk_http import transport_errors

        cut = transport_errors()
        try:
            client = self._client(config.timeout_s)
        except ConfigError:  # a missing key: the member fails with the message that says which variable
            raise
        except Exception as exc:  # e.g. an SDK release that refuses what we hand it: a failed member, not a 500
            import openai

            raise BackendError(f"the OpenAI client for {self.name} could not be built with openai "
                               f"{openai.__version__} ({type(exc).__name__}: {str(exc)[:200]})", kind="config") \
                from None
        params: dict[str, Any] = dict(model=self.spec.model, messages=to_openai_messages(messages), stream=True,
                                      max_tokens=config.max_new_tokens, temperature=config.temperature,
                                      top_p=config.top_p, stream_options={"include_usage": True})
        if config.seed is not None:
            params["seed"] = config.seed
        if self._no_stream_options:
            params.pop("stream_options")
        if config.json_schema is not None and not self._no_response_format:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": portable_schema(config.json_schema),
                                                         "strict": True}}
        usage, finish = Usage(), "stop"
        try:
            while True:
                try:
                    stream = await client.chat.completions.create(**params)
                    break
                except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                    text = str(exc).lower()
                    if "stream_options" in params and "stream_options" in text:
                        # some servers reject the usage option: ask again without it (usage then may be unknown)
                        self._no_stream_options = True
                        params.pop("stream_options")
                    elif "response_format" in params and any(w in text for w in (
                            "response_format", "json_schema", "schema", "guided", "grammar")):
                        # no structured output here: the judge's prompt + validation + retry carry on alone
                        self._no_response_format = True
                        params.pop("response_format")
                    else:
                        raise
            async for event in stream:
                if event.usage is not None:
                    u = event.usage
                    extra = getattr(u, "model_extra", None) or {}
                    cost = getattr(u, "cost", None) if "cost" not in extra else extra["cost"]
                    usage = Usage(u.prompt_tokens or 0, u.completion_tokens or 0,
                                  float(cost) if cost is not None else None)
                for choice in event.choices or ():
                    if choice.finish_reason:
                        finish = choice.finish_reason
                    if choice.delta and choice.delta.content:
                        yield Chunk(choice.delta.content)
        except PolicyError as exc:  # the guarded client refused the address (see egress)
            raise BackendError(str(exc), kind="policy") from None
        except openai.AuthenticationError:
            var = self.spec.api_key_env or "the key variable"
            raise BackendError(f"{self.spec.base_url} rejected the API key: check {var}", kind="config") from None
        except openai.RateLimitError as exc:
            raise BackendError(f"rate limited (429) after {self.max_retries} retries: {_msg(exc)}",
                               retryable=True, kind="rate_limit") from None
        except openai.InternalServerError as exc:
            raise BackendError(f"server error {exc.status_code} after {self.max_retries} retries: {_msg(exc)}",
                               retryable=True, kind="server") from None
        except openai.APITimeoutError:
            raise BackendError(f"{self.spec.base_url} did not answer in time", retryable=True, kind="timeout") \
                from None
        except openai.APIConnectionError:
            raise BackendError(f"cannot reach {self.spec.base_url}: is the server running?", retryable=True,
                               kind="connection") from None
        except openai.NotFoundError as exc:
            raise BackendError(f"{self.spec.base_url} does not know model {self.spec.model!r}: {_msg(exc)}",
                               kind="config") from None
        except openai.APIStatusError as exc:
            raise BackendError(f"HTTP {exc.status_code} from {self.spec.base_url}: {_msg(exc)}",
                               retryable=exc.status_code >= 500, kind="input" if exc.status_code == 400 else "server") \
                from None
        except openai.APIError as exc:  # an error object in the middle of a stream (OpenRouter sends these)
            raise BackendError(f"{self.spec.base_url} broke off the answer with an error: {_msg(exc)}",
                               retryable=True, kind="server") from None
        except cut as exc:  # a reset or cut connection mid-stream (the SDK's HTTP library's own errors)
            raise BackendError(f"the connection to {self.spec.base_url} broke mid-answer: {type(exc).__name__}",
                               retryable=True, kind="connection") from None
        except ValueError as exc:  # a chunk that is not JSON
            raise BackendError(f"{self.spec.base_url} sent a malformed chunk: {str(exc)[:200]}", kind="server") \
                from None
        yield StreamEnd(usage, finish)


def _msg(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(exc, "message", exc))[:300]
