"""Continuous batching for a local text model: a request joins the running batch at the next decode step.

``BatchWorker`` (``worker.py``) runs what is queued together as one ``generate`` call to its end, so a request that
arrives a second later waits for the whole batch before its first token. ``StepWorker`` runs its own decode loop
instead: one forward pass per step for every row in flight; between two steps the requests that arrived are
prefilled (their prompts, as one padded batch) and their key/value cache is joined to the running one, so their
first token comes after one prefill, not after another visitor's answer. A row leaves as soon as it ends (end of
text, its token limit, its deadline, its caller gone) and its cache rows are dropped.

Each row keeps its own settings: temperature and top-p, a seed (its own random generator, so its sample does not
depend on who else is in the batch), ``min_new_tokens``, and a JSON schema (its own grammar matcher,
``constrained.schema_processor``). Rows of different lengths share one cache, padded on the left and masked; each
row's positions are its own. It serves models whose cache is transformers' plain ``DynamicCache`` of full-attention
layers (Llama, SmolLM2, Qwen, Mistral without a sliding window, ...); ``supports(model)`` says so, and the other
models (Llama 4's chunked attention, image + text models) keep ``BatchWorker``. The lifetime rules are
``BatchWorker``'s: ``close()`` cancels queued and running requests and joins the thread.
"""

from __future__ import annotations

import inspect
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError, InputError
from ..types import Chunk, Usage
from .base import StreamEnd
from .worker import GenRequest, WorkerThread, _as_backend_error

#: the settings that choose a local model's batcher (``WORKBENCH_BATCHING``)
BATCHING = ("step", "batch", "paged")


def supports(hf_model) -> bool:
    """Whether ``StepWorker`` can run this model: a text-only causal LM whose cache is all full-attention layers."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    config = hf_model.config
    if hasattr(config, "vision_config") or getattr(config, "is_encoder_decoder", False):
        return False
    try:
        cache = DynamicCache(config=config)
    except Exception:  # noqa: BLE001  (a config the plain cache cannot describe)
        return False
    return all(type(layer) is DynamicLayer for layer in cache.layers) and _cache_kwarg(hf_model) is not None


def _cache_kwarg(hf_model) -> str | None:
    """The name ``forward`` takes the cache by: ``cache`` (transformers >= 5.2x) or ``past_key_values``."""
    params = inspect.signature(hf_model.forward).parameters
    return next((n for n in ("cache", "past_key_values") if n in params), None)


def send_text(tokenizer, row: _Row) -> None:
    """Send the row's caller the text its new tokens added (held back while a multi-byte character is cut)."""
    text = tokenizer.decode(row.tokens, skip_special_tokens=True)
    if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
        return
    delta = text[len(row.sent):] if text.startswith(row.sent) else text
    if delta:
        row.sent = text
        row.request.emit(Chunk(delta))


def end_row(model, row: _Row, reason: str, closed: bool) -> bool:
    """Answer a row that ended: the rest of its text and its usage, or the closed error when the worker was closed
    under it (``reason`` "cancelled"). Whether it ended with a finish reason."""
    r = row.request
    if reason == "cancelled" and closed:
        r.emit(BackendError(f"{model.spec.name} was unloaded while generating", kind="closed"))
        return False
    text = model.tokenizer.decode(row.tokens, skip_special_tokens=True)
    if text != row.sent and text.startswith(row.sent):
        r.emit(Chunk(text[len(row.sent):]))
    r.emit(StreamEnd(Usage(prompt_tokens=row.prompt_tokens, completion_tokens=len(row.tokens) + int(row.hit_eos)),
                     reason))
    return True


@dataclass
class _Row:
    """One request in flight: its tokens so far, its sampler, and what was sent to its caller."""

    request: GenRequest
    prompt_tokens: int
    ids: list[int]  #: prompt + generated (a schema's matcher reads them); the last is fed at position len - 1
    generator: Any = None  #: its own torch.Generator when it samples with a seed
    schema: Any = None  #: its own grammar processor
    tokens: list[int] = field(default_factory=list)  #: generated, end-of-text excluded
    sent: str = ""
    hit_eos: bool = False


class StepWorker(WorkerThread):
    """Continuous batching on a dedicated thread: requests join and leave the running batch between decode steps.

    The interface is ``WorkerThread``'s, as ``BatchWorker``'s (``submit``, ``close``, ``closing``, ``alive``, ``batches_run``,
    ``batch_sizes``, ``finish_reasons`` for tests and benchmarks: here a "batch" is one prefill of the requests
    that joined together). ``steps_run`` counts decode steps and ``step_sizes`` the rows of each.
    """

    def __init__(self, model, name: str, max_batch: int = 8, batch_window_s: float = 0.01):
        self.model = model  #: the LocalModel: hf_model, tokenizer, eos_ids, _chat_text, context_length, spec
        self._rows: list[_Row] = []
        self.steps_run = 0
        self.step_sizes: list[int] = []
        self._cache: Any = None
        self._mask: Any = None  #: (rows, cached length) 1 where a cached position is a real token
        self._kwarg: str = _cache_kwarg(model.hf_model) or "cache"
        super().__init__(f"step-{name}", max_batch, batch_window_s)

    def _in_flight(self) -> list[GenRequest]:
        return [row.request for row in list(self._rows)]

    # --- the loop, on the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        waiting: list[GenRequest] = []
        try:
            with torch.inference_mode():
                self._serve(waiting)
        finally:
            closed = BackendError(f"{self.model.spec.name} was unloaded while generating", kind="closed")
            for row in self._rows:
                row.request.emit(closed)
            self._rows, self._cache, self._mask = [], None, None
            self._refuse_queued(waiting)

    def _serve(self, waiting: list[GenRequest]) -> None:
        while not self._closed:
            if not self._rows and not waiting:  # idle: wait for one, then a moment for those arriving with it
                first = self._queue.get()
                if first is None:
                    return
                waiting.append(first)
                until = time.monotonic() + self.batch_window_s
                while len(waiting) < self.max_batch:
                    try:
                        nxt = self._queue.get(timeout=max(0.0, until - time.monotonic()))
                    except queue.Empty:
                        break
                    if nxt is None:
                        return
                    waiting.append(nxt)
            else:  # running: whoever arrived since the last step joins now
                while True:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        return
                    waiting.append(nxt)
            room = self.max_batch - len(self._rows)
            joining, waiting[:] = [r for r in waiting[:room] if not r.cancel.is_set()], waiting[room:]
            try:
                if joining:
                    self._join(joining)
                if self._rows:
                    self._step()
            except Exception as exc:  # report to every caller in flight; never kill the worker
                err = _as_backend_error(exc)
                for r in [row.request for row in self._rows] + joining:
                    r.emit(err)
                self._rows, self._cache, self._mask = [], None, None
                self._free_cuda()

    def _join(self, requests: list[GenRequest]) -> None:
        """Prefill ``requests`` as one padded batch, sample their first tokens, and join their cache to the batch."""
        import torch
        from transformers.cache_utils import DynamicCache

        m = self.model
        texts = [m._chat_text(r.messages) for r in requests]
        enc = m.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        lens = enc["attention_mask"].sum(dim=1).tolist()
        keep = []
        for i, (r, n) in enumerate(zip(requests, lens)):
            limit = r.config.max_new_tokens
            if m.context_length and n + limit > m.context_length:
                r.emit(InputError(f"the prompt is {n} tokens; with max_new_tokens={limit} it exceeds "
                                  f"{m.spec.name}'s context of {m.context_length} tokens"))
            else:
                keep.append(i)
        if not keep:
            return
        requests, lens = [requests[i] for i in keep], [lens[i] for i in keep]
        ids, mask = enc["input_ids"][keep], enc["attention_mask"][keep]
        start = int(mask.any(dim=0).long().argmax())  # the padding only a refused (longer) prompt needed
        self.batches_run += 1
        self.batch_sizes.append(len(requests))
        device = m.hf_model.device
        ids, mask = ids[:, start:].to(device), mask[:, start:].to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=m.hf_model.config)
        logits = m.hf_model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                            logits_to_keep=1, **{self._kwarg: cache}).logits[:, -1, :]
        rows = []
        for i, r in enumerate(requests):
            prompt = ids[i, ids.shape[1] - int(lens[i]):].tolist()
            row = _Row(r, int(lens[i]), prompt)
            c = r.config
            if c.temperature > 0 and c.seed is not None:
                row.generator = torch.Generator(device=device).manual_seed(int(c.seed))
            if c.json_schema:
                from .constrained import schema_processor

                row.schema = schema_processor(m.tokenizer, m.hf_model.get_output_embeddings().weight.shape[0],
                                              sorted(m.eos_ids), [c.json_schema])
            rows.append(row)
        self._merge(cache, mask)
        self._rows += rows
        self._advance(rows, logits)

    def _merge(self, cache, mask) -> None:
        """Join a prefilled cache to the running one: both padded on the left to the longer, rows appended."""
        import torch
        import torch.nn.functional as F

        if self._cache is None:
            self._cache, self._mask = cache, mask
            return
        a, b = self._mask.shape[1], mask.shape[1]
        width = max(a, b)
        for old, new in zip(self._cache.layers, cache.layers):
            old.keys = torch.cat([F.pad(old.keys, (0, 0, width - a, 0)), F.pad(new.keys, (0, 0, width - b, 0))])
            old.values = torch.cat([F.pad(old.values, (0, 0, width - a, 0)), F.pad(new.values, (0, 0, width - b, 0))])
        self._mask = torch.cat([F.pad(self._mask, (width - a, 0)), F.pad(mask, (width - b, 0))])

    def _step(self) -> None:
        """One decode step for every row in flight."""
        import torch

        rows = self._rows
        device = self._mask.device
        ids = torch.tensor([[row.ids[-1]] for row in rows], device=device)
        positions = torch.tensor([[len(row.ids) - 1] for row in rows], device=device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        logits = self.model.hf_model(input_ids=ids, attention_mask=self._mask, position_ids=positions,
                                     use_cache=True, **{self._kwarg: self._cache}).logits[:, -1, :]
        self.steps_run += 1
        self.step_sizes.append(len(rows))
        self._advance(rows, logits)

    def _advance(self, rows: list[_Row], logits) -> None:
        """Pick each row's next token from its logits, stream it, and let the rows that ended leave."""
        now = time.monotonic()
        ended: list[tuple[_Row, str]] = []
        for row, scores in zip(rows, logits):
            r = row.request
            if r.cancel.is_set():
                ended.append((row, "cancelled"))
                continue
            if now > r.deadline:
                ended.append((row, "timeout"))
                continue
            tok = self._pick(row, scores)
            row.ids.append(tok)
            if tok in self.model.eos_ids:
                row.hit_eos = True
                ended.append((row, "stop"))
                continue
            row.tokens.append(tok)
            self._send(row)
            if len(row.tokens) >= r.config.max_new_tokens:
                ended.append((row, "length"))
        if ended:
            self._leave(ended)

    def _pick(self, row: _Row, scores) -> int:
        import torch

        c = row.request.config
        scores = scores.float()
        if c.min_new_tokens and len(row.tokens) < c.min_new_tokens:
            scores[sorted(self.model.eos_ids)] = float("-inf")
        if row.schema is not None:
            scores = row.schema(torch.tensor([row.ids], device=scores.device), scores[None])[0]
        if c.temperature <= 0:
            return int(scores.argmax())
        probs = torch.softmax(scores / c.temperature, dim=-1)
        if c.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            cut = sorted_p.cumsum(-1) - sorted_p > c.top_p  # keep the smallest set whose mass reaches top_p
            sorted_p[cut] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
        return int(torch.multinomial(probs, 1, generator=row.generator))

    def _send(self, row: _Row) -> None:
        send_text(self.model.tokenizer, row)

    def _leave(self, ended: list[tuple[_Row, str]]) -> None:
        """Answer the rows that ended and drop their cache rows (and the padding no row needs any more)."""
        import torch

        gone = {id(row) for row, _ in ended}
        for row, reason in ended:
            if end_row(self.model, row, reason, self._closed):
                self.finish_reasons.append(reason)
        keep = [i for i, row in enumerate(self._rows) if id(row) not in gone]
        self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._cache, self._mask = None, None
            return
        index = torch.tensor(keep, device=self._mask.device)
        mask = self._mask[index]
        start = int(mask.any(dim=0).long().argmax())  # leading columns that are padding in every row left
        self._mask = mask[:, start:]
        for layer in self._cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]

    @staticmethod
    def _free_cuda() -> None:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
