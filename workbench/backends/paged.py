"""Continuous batching by transformers' own manager (paged attention): ``WORKBENCH_BATCHING=paged``.

``StepWorker`` (``stepper.py``) is the workbench's own continuous batching. ``PagedWorker`` hands the same requests to
the library's ``ContinuousBatchingManager`` (``model.init_continuous_batching(...)``, transformers >= 5.17): a paged
key/value cache, a scheduler that joins a new request to the running batch at the next step and chunks long prefills,
CUDA graphs and flash attention where the device has them. It is the library's path for a GPU; on a CPU it runs too
(a float32 model keeps ``sdpa`` attention), and ``StepWorker`` stays the default there.

Each request keeps, in the manager: its own ``max_new_tokens``, end-of-text ids, temperature and top-p (the library's
per-request logits processors, the same in 5.17 and 5.25: the manager samples, greedy requests get ``top_k=1``), and
``min_new_tokens`` (a per-request processor of ours, first in the manager's list, that holds end-of-text back). What
the manager cannot honour takes a fallback, a ``StepWorker`` on the same model, inside this worker:

- a JSON schema (a grammar-constrained judge): the manager has no per-request grammar;
- sampling with a seed: the manager samples every row from one generator, so a seeded row's sample would depend on
  who shares its batch (``StepWorker`` gives each row its own);
- a prompt + ``max_new_tokens`` larger than the paged cache; and ``min_new_tokens`` if our processor could not be
  installed in this transformers version.

``routed`` counts both paths and ``fallback_reasons`` says why each fallback request went there. Both paths share one
model, one forward pass at a time (a lock in forward hooks: transformers writes ``config.is_causal`` for the length of
each forward, and the manager's are not causal). transformers 5.25 serves a plain forward and a paged one with the
same ``sdpa`` attention;
5.17 switches the model to ``paged|sdpa``, whose function refuses a plain forward, so while the manager holds the
model ``paged|sdpa`` is registered to dispatch (the paged function with the manager's paged cache, plain ``sdpa`` and
its mask without). The model loads as for the other paths (no ``attn_implementation`` at load time: the manager
switches it itself and restores it on ``close``).

Streaming, usage, finish reasons ("stop", "length", "cancelled", "timeout") and the lifetime rules are
``StepWorker``'s: a caller gone or past its deadline cancels its request in the manager (``cancel_request``);
``close()`` cancels what runs (each caller gets the "unloaded while generating" error), refuses what is queued, stops the
manager and closes the fallback.
"""

from __future__ import annotations

import inspect
import itertools
import queue
import time
from typing import Any

from ..errors import BackendError, ConfigError, InputError
from .stepper import StepWorker, _Row, end_row, send_text
from .worker import GenRequest, WorkerThread, _as_backend_error

#: the manager's defaults, only there so that its per-request processors exist (a request always sets its own)
_DEFAULT_TEMPERATURE, _DEFAULT_TOP_P = 0.7, 0.95
#: on a CPU, the paged cache's size (the library sizes it from free GPU memory on a GPU)
_CPU_CACHE_BYTES, _CPU_PAGE, _CPU_BATCH_TOKENS = 256 * 2**20, 32, 256
#: on a GPU, the share of free memory (after loading) the paged cache may take
_GPU_MEMORY_SHARE = 0.5


class PagedWorker(WorkerThread):
    """Requests go to transformers' ``ContinuousBatchingManager``, or to a ``StepWorker`` where it cannot serve them.

    The interface is ``WorkerThread``'s (``submit``, ``close``, ``closing``, ``alive``, ``batches_run``,
    ``batch_sizes``, ``finish_reasons``): here a "batch" is one request added to the manager's running batch (it joins
    at the next step on its own), and ``finish_reasons`` lists the manager's requests; the fallback's are in
    ``fallback.finish_reasons``. ``routed`` counts requests per path and ``fallback_reasons`` says why.
    """

    def __init__(self, model, name: str, max_batch: int = 8, batch_window_s: float = 0.01):
        self.model = model  #: the LocalModel: hf_model, tokenizer, eos_ids, _chat_text, context_length, spec
        self._live: dict[str, _Row] = {}
        self._ids = itertools.count()
        self.routed = {"paged": 0, "fallback": 0}
        self.fallback_reasons: list[str] = []
        self.capacity: int | None = None  #: tokens the paged cache holds (known on a CPU, where it is sized here)
        self.min_new_tokens_in_manager = False  #: whether our min_new_tokens processor is in the manager
        self._hooks: list = []
        self.fallback = StepWorker(model, name, max_batch=max_batch, batch_window_s=batch_window_s)
        try:
            self.manager = self._make_manager(max_batch)
        except BaseException:
            for hook in self._hooks:
                hook.remove()
            self.fallback.close()
            raise
        super().__init__(f"paged-{name}", max_batch, batch_window_s)

    # --- the manager ----------------------------------------------------------------------------------------------

    def _make_manager(self, max_batch: int):
        from transformers import ContinuousBatchingConfig, GenerationConfig

        m = self.model
        hf = m.hf_model
        if not hasattr(hf, "init_continuous_batching"):
            raise ConfigError("batching 'paged' needs transformers' continuous batching (transformers >= 5.17); "
                              "use WORKBENCH_BATCHING=step")
        vocab = hf.get_output_embeddings().weight.shape[0]
        gen = GenerationConfig(do_sample=True, temperature=_DEFAULT_TEMPERATURE, top_p=_DEFAULT_TOP_P, top_k=vocab,
                               max_new_tokens=256, eos_token_id=sorted(m.eos_ids), pad_token_id=m.tokenizer.pad_token_id)
        fields = inspect.signature(ContinuousBatchingConfig).parameters
        cb: dict[str, Any] = {"per_request_processors": True, "max_requests_per_batch": max_batch}
        if hf.device.type == "cpu":
            page = "page_size" if "page_size" in fields else "block_size"  # 5.17 names it block_size
            blocks = max(16, _CPU_CACHE_BYTES // (_kv_bytes_per_token(hf) * _CPU_PAGE))
            cb.update({page: _CPU_PAGE, "num_blocks": blocks, "max_batch_tokens": _CPU_BATCH_TOKENS})
            self.capacity = blocks * _CPU_PAGE
        else:
            cb["max_memory_percent"] = _GPU_MEMORY_SHARE
        manager = hf.init_continuous_batching(generation_config=gen,
                                              continuous_batching_config=ContinuousBatchingConfig(**cb))
        self.min_new_tokens_in_manager = _install_min_new_tokens(manager, sorted(m.eos_ids), vocab, hf.device)
        _share_paged_attention(hf)
        self._hooks = _one_forward_at_a_time(hf)
        return manager  # started by this worker's thread (``_run``)

    def _fallback_reason(self, r: GenRequest) -> str | None:
        c = r.config
        if c.json_schema:
            return "json_schema"
        if c.temperature > 0 and c.seed is not None:
            return "seed"
        if c.min_new_tokens and not self.min_new_tokens_in_manager:
            return "min_new_tokens"
        if any(msg.images for msg in r.messages):
            return "images"
        return None

    def _in_flight(self) -> list[GenRequest]:
        return [row.request for row in list(self._live.values())]

    # --- the loop, on the worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        pending: list[GenRequest] = []
        try:
            # Started here, not by the caller: a thread takes its daemon flag from the thread that creates it, and
            # the manager's (made by the library, not a daemon from the main thread) would hold the interpreter's
            # exit before the exit hook that closes every worker (``lifetime``) could stop it. 5.25 runs its loop
            # in the starting thread's inference mode.
            with torch.inference_mode():
                self.manager.start()
            self._serve()
        finally:
            closed = BackendError(f"{self.model.spec.name} was unloaded while generating", kind="closed")
            for rid, row in list(self._live.items()):
                self.manager.cancel_request(rid)
                row.request.emit(closed)
            self._live.clear()
            self._refuse_queued(pending)
            try:
                self.manager.stop(block=True, timeout=60, hard_stop=True)
            except Exception:  # noqa: BLE001  (a manager that died already: nothing left to stop)
                pass
            self.fallback.close()
            for hook in self._hooks:
                hook.remove()

    def _serve(self) -> None:
        while not self._closed:
            while True:  # whoever arrived joins now; idle, wait for one
                try:
                    r = self._queue.get() if not self._live else self._queue.get_nowait()
                except queue.Empty:
                    break
                if r is None:
                    return
                self._route(r)
            self._check_callers()
            if not self._live:
                continue
            if not self.manager.is_running():  # the manager's loop died: nobody will answer these
                status = getattr(self.manager, "background_thread_status", None)
                err = BackendError(f"the continuous batching manager stopped: {getattr(status, 'fatal_error', None)}",
                                   kind="backend")
                for row in self._live.values():
                    row.request.emit(err)
                self._live.clear()
                continue
            out = self.manager.get_result(timeout=0.02)
            while out is not None:
                self._deliver(out)
                out = self.manager.get_result(timeout=0)

    def _route(self, r: GenRequest) -> None:
        if r.cancel.is_set():
            return
        reason = self._fallback_reason(r)
        ids: list[int] = []
        if reason is None:
            m = self.model
            ids = m.tokenizer(m._chat_text(r.messages), add_special_tokens=False)["input_ids"]
            limit = r.config.max_new_tokens
            if m.context_length and len(ids) + limit > m.context_length:
                r.emit(InputError(f"the prompt is {len(ids)} tokens; with max_new_tokens={limit} it exceeds "
                                  f"{m.spec.name}'s context of {m.context_length} tokens"))
                return
            if self.capacity is not None and len(ids) + limit > self.capacity:
                reason = "cache_size"
        if reason is not None:
            self.routed["fallback"] += 1
            self.fallback_reasons.append(reason)
            try:
                self.fallback.submit(r)
            except BackendError as exc:
                r.emit(exc)
            return
        c = r.config
        rid = f"wb-{next(self._ids)}"
        sampled = c.temperature > 0
        kwargs: dict[str, Any] = {"temperature": float(c.temperature) if sampled else 1.0,
                                  "top_p": float(c.top_p) if sampled else 1.0,
                                  "top_k": self.model.hf_model.get_output_embeddings().weight.shape[0] if sampled else 1}
        if c.min_new_tokens:
            kwargs["min_new_tokens"] = int(c.min_new_tokens)
        self._live[rid] = _Row(r, len(ids), list(ids))
        try:
            added = self.manager.add_request(ids, request_id=rid, max_new_tokens=c.max_new_tokens, streaming=True,
                                             eos_token_id=sorted(self.model.eos_ids), **kwargs)
        except Exception as exc:  # noqa: BLE001  (a full queue, a refused argument: this request only)
            added, err = None, _as_backend_error(exc)
        else:
            status = getattr(self.manager, "background_thread_status", None)
            err = BackendError(f"the continuous batching manager refused the request (stopped: "
                               f"{getattr(status, 'fatal_error', None) or 'stopping'})", kind="backend")
        if added is None:
            del self._live[rid]
            r.emit(err)
            return
        self.routed["paged"] += 1
        self.batches_run += 1
        self.batch_sizes.append(1)

    def _check_callers(self) -> None:
        """A caller gone or past its deadline: cancel its request in the manager and answer it now."""
        now = time.monotonic()
        for rid, row in list(self._live.items()):
            r = row.request
            if r.cancel.is_set() or now > r.deadline:
                self.manager.cancel_request(rid)
                self._end(rid, "cancelled" if r.cancel.is_set() else "timeout")

    def _deliver(self, out) -> None:
        row = self._live.get(out.request_id)
        if row is None:  # cancelled and answered already
            return
        if getattr(out, "error", None):
            del self._live[out.request_id]
            row.request.emit(BackendError(f"generation failed: {out.error}", kind="backend"))
            return
        tokens = list(out.generated_tokens)
        finished = out.is_finished()
        if finished and tokens and tokens[-1] in self.model.eos_ids:
            row.hit_eos = True
            tokens = tokens[:-1]
        row.tokens = [t for t in tokens if t not in self.model.eos_ids]
        send_text(self.model.tokenizer, row)
        if finished:
            self._end(out.request_id, "stop" if row.hit_eos else "length")

    def _end(self, rid: str, reason: str) -> None:
        if end_row(self.model, self._live.pop(rid), reason, self._closed):
            self.finish_reasons.append(reason)


def _one_forward_at_a_time(hf_model) -> list:
    """Serialise the model's forward passes (the manager's and the fallback's): transformers sets ``config.is_causal``
    for the length of each forward (``merge_with_config_defaults``; the manager's are never causal) and restores it
    after, so two at once on one config read each other's value (a plain forward then attends both ways: garbage)
    and can leave it wrong for good. A CUDA graph replayed by the manager calls no forward and needs no lock."""
    import threading

    lock = threading.Lock()

    def enter(module, args):
        lock.acquire()

    def leave(module, args, output):
        lock.release()

    return [hf_model.register_forward_pre_hook(enter), hf_model.register_forward_hook(leave, always_call=True)]


def _kv_bytes_per_token(hf_model) -> int:
    """Bytes one token's keys and values take in every layer (to size a CPU cache)."""
    cfg = hf_model.config.get_text_config()
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return max(1, 2 * cfg.num_hidden_layers * heads * head_dim * hf_model.dtype.itemsize)


def _install_min_new_tokens(manager, eos_ids: list[int], vocab: int, device) -> bool:
    """Put a per-request ``min_new_tokens`` processor first in the manager's list (before top-k, which would otherwise
    leave a greedy row nothing but end-of-text to hold back). Before ``start``: the argument storage is sized then.
    False where the list is not laid out as in transformers 5.17 to 5.25 (those requests then take the fallback)."""
    try:
        import torch
        from transformers.generation.continuous_batching.cb_logits_processors import (
            ContinuousBatchingLogitsProcessor,
        )
    except ImportError:
        return False
    procs: Any = getattr(manager, "logit_processor", None)
    if not all(hasattr(procs, a) for a in ("logits_processor", "tensors_required", "supported_keys", "do_processing")):
        return False

    class MinNewTokens(ContinuousBatchingLogitsProcessor):
        supported_kwargs: dict[str, type] = {"min_new_tokens": int}
        ignored_kwargs: tuple[str, ...] = ()

        def __init__(self) -> None:
            self.eos = torch.zeros(vocab, dtype=torch.bool, device=device)
            self.eos[eos_ids] = True

        def fill_defaults(self, int32_tensor) -> None:
            int32_tensor.fill_(0)

        def prepare_tensor_args(self, requests_with_new_token) -> Any:
            hold = [int(len(f.state.generated_tokens) < f.state.logit_processor_kwargs.get("min_new_tokens", 0))
                    for f in requests_with_new_token]
            return torch.tensor(hold, dtype=torch.int32, device="cpu")

        def __call__(self, scores, tensor_arg):
            hold = tensor_arg[: scores.size(0)].bool().unsqueeze(-1) & self.eos[: scores.size(-1)]
            return scores.masked_fill(hold, float("-inf"))

    procs.logits_processor.insert(0, MinNewTokens())
    procs.tensors_required += 1
    procs.supported_keys.update(MinNewTokens.supported_kwargs)
    procs.do_processing = True
    return True


def _share_paged_attention(hf_model) -> None:
    """Let a plain forward run while the manager holds the model (transformers 5.17).

    5.17's manager switches the model to ``paged|<impl>``, whose function raises on a forward without the manager's
    paged cache, and whose name has no mask function (a plain forward would get no mask). Registered once per
    process: ``paged|<impl>`` dispatches on that cache (the library's paged function with it, ``<impl>`` without) and
    masks as ``<impl>``. 5.25 keeps ``sdpa`` (which serves both), so nothing is registered there."""
    impl = getattr(hf_model.config, "_attn_implementation", None) or ""
    if not impl.startswith("paged|"):
        return
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

    base = impl.removeprefix("paged|")
    try:
        paged, plain = ALL_ATTENTION_FUNCTIONS[impl], ALL_ATTENTION_FUNCTIONS[base]
    except KeyError:  # paged|eager: the plain eager function is each model's own; the fallback cannot share it
        return
    if getattr(paged, "_workbench_dispatch", False):
        return

    def dispatch(module, query, key, value, attention_mask, *args, **kwargs):
        if kwargs.get("cache") is not None:
            return paged(module, query, key, value, attention_mask, *args, **kwargs)
        return plain(module, query, key, value, attention_mask, *args, **kwargs)

    dispatch._workbench_dispatch = True  # type: ignore[attr-defined]
    AttentionInterface.register(impl, dispatch)
    if impl not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping and base in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionMaskInterface.register(impl, ALL_MASK_ATTENTION_FUNCTIONS[base])
