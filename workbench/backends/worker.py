"""One worker thread per loaded local model: queued requests are batched into one ``generate`` call.

Torch never runs on the event loop. Requests that arrive together and share sampling settings are
padded on the left and generated as one batch; each request streams its own text back to its own
asyncio queue, can be cancelled on its own (a per-row stopping criterion), and gets its own usage.

A worker has a lifetime: ``close()`` cancels what is queued and running, and joins the thread. The
thread must be joined before the interpreter shuts down: a thread still freeing tensors then is killed
by ``pthread_exit`` while inside libtorch's C++ frames, and the process aborts (``terminate called
without an active exception``, status 134). ``workbench.backends.lifetime`` closes every worker at exit.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError, InputError, OutOfMemoryError
from ..types import Chunk, GenerateConfig, Message, Usage

OOM_HINT = ("out of GPU memory: load in INT4 (--quant int4), lower max_memory per GPU so accelerate offloads "
            "to the CPU, or use fewer/shorter prompts")


@dataclass
class GenRequest:
    """One queued generation."""

    messages: list[Message]
    config: GenerateConfig
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue  #: receives Chunk, then a StreamEnd or an exception
    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float = 0.0  #: time.monotonic() after which generation stops

    def emit(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the caller's loop is gone; nobody is listening
            self.cancel.set()

    @property
    def batch_key(self) -> tuple:
        c = self.config
        # temperature is applied per row (see row_temperature_processor); greedy and sampled rows don't mix
        return (c.max_new_tokens, c.min_new_tokens, c.temperature > 0, c.top_p, c.seed,
                any(m.images for m in self.messages), json.dumps(c.json_schema, sort_keys=True) if c.json_schema else None)


class WorkerThread:
    """What every local model's worker shares: a request queue, one thread, ``submit`` and ``close``.

    Subclasses set up their own state, then call ``__init__`` (which starts the thread on ``_run``), and name the
    requests in flight in ``_in_flight`` (``close`` cancels them)."""

    def __init__(self, name: str, max_batch: int, batch_window_s: float):
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._closed = False
        self._submit_lock = threading.Lock()
        self.batches_run = 0  #: how many batches were started (for tests and benchmarks)
        self.batch_sizes: list[int] = []
        self.finish_reasons: list[str] = []  #: per request, in order of completion (for tests and benchmarks)
        self._thread = threading.Thread(target=self._run, name=f"workbench-{name}", daemon=True)
        self._thread.start()
        _WORKERS.add(self)

    def _run(self) -> None:
        raise NotImplementedError

    def _in_flight(self) -> list[GenRequest]:
        return []

    def _refuse_queued(self, pending: list[GenRequest]) -> None:
        """Closing: nobody will serve ``pending`` and what is still queued, so tell their callers."""
        while True:
            try:
                r = self._queue.get_nowait()
            except queue.Empty:
                break
            if r is not None:
                pending.append(r)
        closed = BackendError("the model was closed (unloaded) before this request ran", kind="closed")
        for r in pending:
            r.emit(closed)

    def submit(self, request: GenRequest) -> None:
        """Queue a request. Raises BackendError once the worker is closed."""
        with self._submit_lock:  # never behind the closing sentinel, where nobody would answer it
            if self._closed:
                raise BackendError("the model was closed (unloaded); load it again", kind="closed")
            self._queue.put(request)

    @property
    def closing(self) -> bool:
        """Whether ``close()`` was called (running requests are being cancelled because of it)."""
        return self._closed

    @property
    def alive(self) -> bool:
        """Whether the thread is still running."""
        return self._thread.is_alive()

    def close(self, timeout: float | None = None) -> bool:
        """Stop the worker: cancel queued and running requests, then join the thread.

        A running ``generate`` (or decode step) stops at its next token (the per-row stopping criterion); the
        thread then frees the batch's tensors and returns. Returns False if the thread was still alive after
        ``timeout``.
        """
        with self._submit_lock:
            self._closed = True
            self._queue.put(None)
        for r in self._in_flight():
            r.cancel.set()
        if threading.current_thread() is not self._thread:
            _join(self._thread, timeout)
        return not self._thread.is_alive()


class BatchWorker(WorkerThread):
    """Runs ``generate_batch(requests)`` on a dedicated thread, batching what is queued together."""

    def __init__(self, generate_batch: Callable[[list[GenRequest]], None], name: str,
                 max_batch: int = 8, batch_window_s: float = 0.01):
        self._generate_batch = generate_batch
        self._running: list[GenRequest] = []  #: the batch being generated (cancelled by close)
        super().__init__(name, max_batch, batch_window_s)

    def _in_flight(self) -> list[GenRequest]:
        return list(self._running)

    def _run(self) -> None:
        pending: list[GenRequest] = []
        try:
            self._serve(pending)
        finally:
            self._refuse_queued(pending)

    def _serve(self, pending: list[GenRequest]) -> None:
        while True:
            first = pending.pop(0) if pending else self._queue.get()
            if first is None:
                return
            # Give requests that arrive together a moment to join the same batch.
            batch: list[GenRequest] = [first]
            rest: list[GenRequest] = []
            until = time.monotonic() + self.batch_window_s
            while len(batch) < self.max_batch:
                try:
                    nxt = pending.pop(0) if pending else self._queue.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                (batch if nxt.batch_key == first.batch_key else rest).append(nxt)
            pending[:] = rest + pending
            batch = [r for r in batch if not r.cancel.is_set()]
            if not batch:
                continue
            self._running = batch
            if self._closed:  # close() may have looked at _running just before: don't start this batch
                self._running = []
                pending.extend(batch)
                return
            self.batches_run += 1
            self.batch_sizes.append(len(batch))
            try:
                self._generate_batch(batch)
            except Exception as exc:  # report to every waiting caller; never kill the worker
                err = _as_backend_error(exc)
                for r in batch:
                    r.emit(err)
            finally:
                self._running = []
            if self._closed:
                return


#: every worker not yet joined; the exit hook joins any that a close left running
_WORKERS: weakref.WeakSet[WorkerThread] = weakref.WeakSet()


def _join(thread: threading.Thread, timeout: float | None = None) -> None:
    """Join, even through Ctrl-C: a worker abandoned mid-join would still run at interpreter shutdown."""
    interrupted: KeyboardInterrupt | None = None
    deadline = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        try:
            thread.join(left)
        except KeyboardInterrupt as exc:  # Ctrl-C, or the CLI's SIGTERM: finish joining, then pass it on
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def join_all_workers() -> None:
    """Close and join every worker still alive (the last step before the interpreter finalises)."""
    for w in list(_WORKERS):
        if w.alive:
            w.close()


def _as_backend_error(exc: Exception) -> Exception:
    if isinstance(exc, (BackendError, InputError)):
        return exc
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in str(exc).lower():
        return OutOfMemoryError(OOM_HINT)
    return BackendError(f"generation failed: {name}: {exc}", kind="backend")


class BatchStreamer:
    """A transformers streamer for a batch: decodes each row incrementally and emits its new text."""

    def __init__(self, tokenizer, requests: list[GenRequest], eos_ids: set[int],
                 on_eos: Callable[[int], None] | None = None):
        self.tokenizer = tokenizer
        self.requests = requests
        self.eos_ids = eos_ids
        self.on_eos = on_eos  #: called with a row's index when it ends its text (its caller need not wait for the batch)
        self.tokens: list[list[int]] = [[] for _ in requests]
        self.sent: list[str] = ["" for _ in requests]
        self.done = [False] * len(requests)
        self.hit_eos = [False] * len(requests)
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first sends the prompt ids
            self._prompt_seen = True
            return
        ids = value.reshape(len(self.requests), -1)[:, -1].tolist()
        for i, tok in enumerate(ids):
            if self.done[i]:
                continue
            if tok in self.eos_ids:
                self.done[i] = self.hit_eos[i] = True
                self._flush(i)
                if self.on_eos is not None:
                    self.on_eos(i)
                continue
            self.tokens[i].append(tok)
            text = self.tokenizer.decode(self.tokens[i], skip_special_tokens=True)
            if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
                continue
            delta = text[len(self.sent[i]):] if text.startswith(self.sent[i]) else text
            if delta:
                self.sent[i] = text
                self.requests[i].emit(Chunk(delta))

    def _flush(self, i: int) -> None:
        text = self.tokenizer.decode(self.tokens[i], skip_special_tokens=True)
        if text != self.sent[i] and text.startswith(self.sent[i]):
            self.requests[i].emit(Chunk(text[len(self.sent[i]):]))
            self.sent[i] = text

    def end(self) -> None:
        for i in range(len(self.requests)):
            if not self.hit_eos[i]:
                self._flush(i)

    def usage(self, i: int, prompt_tokens: int) -> Usage:
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=len(self.tokens[i]) + int(self.hit_eos[i]))


def make_stopping_criteria(requests: list[GenRequest]):
    """Per-row stop: a cancelled or timed-out request stops its own row only."""
    import torch
    from transformers import StoppingCriteria

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            now = time.monotonic()
            flags = [r.cancel.is_set() or now > r.deadline for r in requests]
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    return _Stop()


def row_temperature_processor(temperatures: list[float]):
    """Divide each row's logits by its own temperature, so one batch can serve members with different ones."""
    import torch
    from transformers import LogitsProcessor

    class _RowTemperature(LogitsProcessor):
        def __call__(self, input_ids, scores):
            t = torch.tensor(temperatures, dtype=scores.dtype, device=scores.device).unsqueeze(1)
            return scores / t

    return _RowTemperature()
