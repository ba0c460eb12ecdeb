"""The one backend interface. A backend implements ``_stream``; the base class owns the rest.

The base class turns a backend's stream of chunks into a ``Response`` or a ``Failure``: it times the first
token and the whole generation, enforces the timeout, drops images for text-only models (with a note),
and converts expected errors into data. Retries for remote APIs are the SDK's (see openai_compat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError, ConfigError, InputError
from ..specs import ModelSpec
from ..types import Chunk, Failure, GenerateConfig, Message, Prompt, Response, Result, TextPart, Usage

log = logging.getLogger("workbench.backends")

#: what a visitor of a public server is told when a host's model fails (``ModelSpec.private``), by kind of failure
PUBLIC_REASONS = {
    "config": "the host's setup of this model failed (a key, a name or the server's configuration)",
    "connection": "the model's server could not be reached",
    "timeout": "the model's server did not answer in time",
    "rate_limit": "the model's provider is rate-limiting requests (HTTP 429); try again later",
    "server": "the model's server answered with an error",
    "input": "the model's server refused the request",
    "oom": "the model ran out of memory on this request",
    "load": "the model could not be loaded",
    "closed": "the model was unloaded on the server during this run",
}


def shown_reason(spec: ModelSpec | None, message: str, kind: str) -> str:
    """``message`` as the caller may see it: whole in local mode and for a caller's own endpoint; for a host's
    model on a public server (``spec.private``) the kind of failure only, the message going to the host's log."""
    if spec is None or not spec.private:
        return message
    log.warning("%s failed (%s): %s", spec.name, kind, message)
    return PUBLIC_REASONS.get(kind, "the model failed") + " (the host's log has the detail)"


@dataclass
class StreamEnd:
    """The last item of a backend stream: accounting for the whole generation."""

    usage: Usage
    finish_reason: str = "stop"


class ModelBackend(ABC):
    """A model that can generate from chat messages."""

    spec: ModelSpec

    #: at most this many generations in flight per event loop (None: no limit; local models queue anyway)
    max_concurrency: int | None = None

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self._limits: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _limit(self):
        """This loop's semaphore (asyncio primitives belong to one loop), or a no-op without a limit."""
        if self.max_concurrency is None:
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        sem = self._limits.get(loop)
        if sem is None:
            sem = self._limits[loop] = asyncio.Semaphore(self.max_concurrency)
        return sem

    @property
    def name(self) -> str:
        """The model's name as the user typed it."""
        return self.spec.name

    def identity(self) -> dict[str, Any]:
        """What identifies the weights or endpoint behind this model (``workbench.provenance``): a checkpoint's
        Hub revision or sha256, an endpoint's host. Backends add what they know; the base knows nothing more."""
        return {}

    @property
    def supports_images(self) -> bool:
        """Whether the model takes image input."""
        return bool(self.spec.vision)

    @abstractmethod
    def _stream(self, messages: list[Message], config: GenerateConfig) -> AsyncIterator[Chunk | StreamEnd]:
        """Yield text chunks as they are generated, then one StreamEnd. Raise BackendError on failure."""

    async def complete(self, messages: list[Message], config: GenerateConfig | None = None,
                       on_text: Callable[[str], None] | None = None, drop_images: bool = True) -> Result:
        """Generate from ``messages``; every expected failure comes back as a ``Failure``.

        Args:
            messages: the chat, images inside user messages.
            config: sampling and limits (defaults when None).
            on_text: called with each new piece of text as it streams.
            drop_images: for text-only models, drop images with a note (True) or fail (False).
        """
        config = config or GenerateConfig()
        notes: list[str] = []
        if not self.supports_images and any(m.images for m in messages):
            if not drop_images:
                return Failure(f"{self.name} is a text-only model and cannot take images", "input", self.name)
            messages = [Message(m.role, tuple(p for p in m.content if isinstance(p, TextPart)) or (TextPart(""),))
                        for m in messages]
            notes.append(f"images dropped: {self.name} is text-only")
        start = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        end = StreamEnd(Usage())
        try:
            async with self._limit(), asyncio.timeout(config.timeout_s):
                async for item in self._stream(messages, config):
                    if isinstance(item, StreamEnd):
                        end = item
                        continue
                    if not item.text:
                        continue
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    parts.append(item.text)
                    if on_text is not None:
                        on_text(item.text)
        except TimeoutError:
            return Failure(f"timed out after {config.timeout_s:g} s", "timeout", self.name, True,
                           time.perf_counter() - start, "".join(parts))
        except BackendError as exc:
            return Failure(shown_reason(self.spec, str(exc), exc.kind), exc.kind, self.name, exc.retryable,
                           time.perf_counter() - start, "".join(parts))
        except InputError as exc:
            return Failure(shown_reason(self.spec, str(exc), "input"), "input", self.name, False,
                           time.perf_counter() - start)
        except ConfigError as exc:
            return Failure(shown_reason(self.spec, str(exc), "config"), "config", self.name, False,
                           time.perf_counter() - start)
        text = "".join(parts)
        usage = end.usage
        if usage.cost_usd is None and self.spec.price_in_per_m is not None:
            usage.cost_usd = (usage.prompt_tokens * self.spec.price_in_per_m
                              + usage.completion_tokens * (self.spec.price_out_per_m or 0.0)) / 1e6
        return Response(text, self.name, usage, end.finish_reason, ttft, time.perf_counter() - start, notes)

    async def generate(self, prompt: Prompt | str, persona: str | None = None, **settings) -> Result:
        """Generate an answer to ``prompt``.

        Args:
            prompt: a Prompt, or plain text.
            persona: an optional system prompt.
            **settings: GenerateConfig fields (max_new_tokens, temperature, top_p, seed, timeout_s).

        Returns:
            A Response, or a Failure saying why (an image to a text-only model is a Failure here).
        """
        if isinstance(prompt, str):
            prompt = Prompt(prompt)
        config = GenerateConfig().replace(**settings)
        return await self.complete(prompt.messages(persona), config, drop_images=False)

    async def stream(self, prompt: Prompt | str, persona: str | None = None, **settings) -> AsyncIterator[str]:
        """Yield the answer's text as it is generated; raise BackendError if generation fails."""
        if isinstance(prompt, str):
            prompt = Prompt(prompt)
        queue: asyncio.Queue = asyncio.Queue()
        config = GenerateConfig().replace(**settings)
        task = asyncio.ensure_future(self.complete(prompt.messages(persona), config, queue.put_nowait, False))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (piece := await queue.get()) is not None:
                yield piece
            result = task.result()
            if not result.ok:
                raise BackendError(result.reason, retryable=result.retryable, kind=result.kind)
        finally:
            task.cancel()

    def close(self) -> None:  # noqa: B027 (a no-op unless the backend holds something)
        """Release resources (threads, GPU memory, connections)."""

    def __enter__(self) -> ModelBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
