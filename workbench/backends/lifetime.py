"""Loaded models have a lifetime: handles, shared weights, unloading, and a clean process exit.

``load_model`` returns a ``ModelHandle``. Every handle to the same model (same spec) shares one loaded
backend: one copy of the weights, one worker thread, one batch queue. A model stays loaded while any
handle to it is open, or while it is *kept* (the fusion engine and the app keep the models they use, so
a second run does not load them again). ``handle.close()`` (or leaving ``with``) ends one handle; when
the last one ends and nothing keeps the model, it is closed and its memory returned. ``unload(name)``
closes a model now, whoever holds it; ``unload_all()`` closes every model.

At interpreter exit every model is closed in a defined order (cancel what runs, join each worker,
then drop the weights), before Python starts finalising: a worker thread still running native code at
that point aborts the process (see ``workbench.backends.worker``).
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError, WorkbenchError
from ..specs import ModelSpec, Registry, load_registry, with_quant
from ..types import Failure, Result
from .base import ModelBackend
from .registry import construct


def spec_for(model: str | ModelSpec, quant: str | None = None, registry: Registry | None = None) -> ModelSpec:
    """Resolve a model name (preset, ``scheme:model``, HF id, directory) to a ModelSpec."""
    spec = model if isinstance(model, ModelSpec) else (registry or load_registry()).resolve(model)
    return with_quant(spec, quant)


def _key(spec: ModelSpec) -> tuple:
    # private: failures told without the host's details (a public server's copy)
    # vision: whether the backend is sent images (two specs of one endpoint model, one text-only, are two backends)
    return (spec.backend, spec.model, spec.quant, spec.base_url, spec.api_key_env, spec.dtype,
            tuple(sorted((spec.max_memory or {}).items())), spec.skip_modules, spec.vision,
            spec.private)


@dataclass
class _Entry:
    """One loaded (or loading) model and who holds it."""

    spec: ModelSpec
    lock: threading.Lock = field(default_factory=threading.Lock)  #: held while this model loads
    backend: ModelBackend | None = None
    handles: int = 0  #: open handles
    kept: bool = False  #: kept loaded by the process (engine, app) until unload
    unloaded: bool = False  #: unload() took it out of the registry: a load still waiting must not revive it


_ENTRIES: dict[tuple, _Entry] = {}
_EXITING = threading.Event()  #: set at interpreter exit: loads are refused from then on
_LOCK = threading.RLock()  # guards _ENTRIES and counters; never held while a model loads (re-entrant: a
# handle collected by the garbage collector releases itself, maybe while this thread holds the lock)


class ModelHandle:
    """A handle on a loaded model; attribute access goes to the shared backend.

    Use it as the model itself (``generate``, ``complete``, ``stream``, ``hf_model``, ``processor``,
    ``memory_report()`` ...). ``close()`` or leaving a ``with`` block ends this handle; the model is
    unloaded when its last handle ends and nothing keeps it.
    """

    def __init__(self, entry: _Entry):
        self._entry = entry
        self._backend = entry.backend
        self._finalizer = weakref.finalize(self, _release, entry)  # a dropped handle is a closed handle

    @property
    def closed(self) -> bool:
        """True once this handle was closed or its model unloaded."""
        return self._backend is None or not self._finalizer.alive or self._entry.backend is not self._backend

    def _closed_message(self) -> str:
        name = self._entry.spec.name
        return f"the model {name} is closed (unloaded): load it again with wb.load_model({name!r})"

    @property
    def backend(self) -> ModelBackend:
        """The shared backend object behind this handle."""
        if self.closed:
            raise BackendError(self._closed_message(), kind="closed")
        return self._backend  # type: ignore[return-value]

    @property
    def spec(self) -> ModelSpec:
        """The model's spec (readable after close)."""
        return self._entry.spec

    @property
    def name(self) -> str:
        return self._entry.spec.name

    @property
    def supports_images(self) -> bool:
        """Whether the model takes images (from the spec once closed)."""
        backend = self._backend
        return bool(self.spec.vision) if backend is None or self.closed else backend.supports_images

    # Generation on a closed handle is a failed generation (data), like any other model failure.

    async def complete(self, messages, config=None, on_text=None, drop_images: bool = True) -> Result:
        """``ModelBackend.complete``; a Failure of kind "closed" once the model is unloaded."""
        backend = self._backend
        if backend is None or self.closed:
            return Failure(self._closed_message(), "closed", self.name)
        return await backend.complete(messages, config, on_text, drop_images)

    async def generate(self, prompt, persona: str | None = None, **settings) -> Result:
        """``ModelBackend.generate``; a Failure of kind "closed" once the model is unloaded."""
        backend = self._backend
        if backend is None or self.closed:
            return Failure(self._closed_message(), "closed", self.name)
        return await backend.generate(prompt, persona, **settings)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.backend, name)

    def close(self) -> None:
        """End this handle (idempotent)."""
        self._finalizer()

    def __enter__(self) -> ModelHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ModelHandle {self._entry.spec.name!r} ({type(self._backend).__name__}, {state})>"


def load_model(model: str | ModelSpec, quant: str | None = None, registry: Registry | None = None, *,
               keep: bool = False) -> ModelHandle:
    """Load (or share) a model by preset name, Hugging Face id, local checkpoint directory or endpoint spec.

    Args:
        model: e.g. "scout-int4", "tiny-offline", "meta-llama/Llama-4-Scout-17B-16E-Instruct", "./ckpt",
            "openrouter:meta-llama/llama-4-scout", or a ModelSpec.
        quant: "int4" or "none" to override the spec's quantization (local models).
        registry: where presets come from (default: shipped presets + user file).
        keep: keep the model loaded after this handle closes, until ``unload`` (the engine and the app
            do this so the next run does not load it again).

    Returns:
        A ModelHandle: use it as the model; ``with load_model(...) as m:`` unloads it at the end of the
        block unless another handle is open or something keeps it.

    Raises:
        UnknownModelError, ModelLoadError, OutOfMemoryError, MissingDependencyError.
    """
    spec = spec_for(model, quant, registry)
    key = _key(spec)
    with _LOCK:
        entry = _ENTRIES.setdefault(key, _Entry(spec))
        entry.handles += 1  # counted while loading, so nobody unloads it under us
    try:
        with entry.lock:  # one load per model; other models load in parallel
            if entry.unloaded or _EXITING.is_set():
                raise BackendError(f"{spec.name} was unloaded while waiting to load; load it again", kind="closed")
            if entry.backend is None:
                entry.backend = construct(spec)
    except BaseException:
        _release(entry)
        raise
    with _LOCK:
        entry.kept |= keep
        # an unload that ran while we waited removed the entry: put it back, it is loaded again
        _ENTRIES.setdefault(key, entry)
    return ModelHandle(entry)  # takes over the count made above


def _release(entry: _Entry) -> None:
    """One handle of ``entry`` ended; close the model if it was the last and nothing keeps it."""
    with _LOCK:
        entry.handles -= 1
        if entry.handles > 0 or entry.kept or entry.backend is None:
            return
        backend, entry.backend = entry.backend, None
        if _ENTRIES.get(_key(entry.spec)) is entry:
            del _ENTRIES[_key(entry.spec)]
    backend.close()


def unload(model: str | ModelSpec | None = None, registry: Registry | None = None) -> list[str]:
    """Close a loaded model now (every handle to it), or every model when ``model`` is None.

    Memory is returned (the worker is joined, the weights dropped, the CUDA cache emptied). A handle
    used afterwards raises BackendError saying the model was unloaded; a run that was using it records
    a failed member. A load in progress is waited for, then closed (no thread is left inside
    ``from_pretrained`` when the process exits). Returns the names of the models closed.
    """
    with _LOCK:
        if model is None:
            entries = list(_ENTRIES.values())
        elif isinstance(model, ModelSpec):
            entries = [e for k, e in _ENTRIES.items() if k == _key(model)]
        else:
            entries = [e for e in _ENTRIES.values() if e.spec.name == model]
            if not entries:  # a name that resolves to a loaded one under another name
                try:
                    key = _key(spec_for(model, registry=registry))
                except WorkbenchError:  # not a model name at all: nothing of that name is loaded
                    key = None
                entries = [e for k, e in _ENTRIES.items() if k == key]
        for e in entries:
            _ENTRIES.pop(_key(e.spec), None)
            e.kept = False
            e.unloaded = True
    closed = []
    for e in entries:
        with e.lock:  # waits for a load in progress
            backend, e.backend = e.backend, None
        if backend is not None:
            backend.close()
            closed.append(backend.name)
    return closed


def unload_all() -> list[str]:
    """Close every loaded model (frees threads and memory). Returns their names."""
    return unload(None)


def loaded_keys() -> set[tuple]:
    """What is loaded now, as opaque keys (for ``unload_since``)."""
    with _LOCK:
        return {k for k, e in _ENTRIES.items() if e.backend is not None}


def unload_since(before: set[tuple]) -> list[str]:
    """Close the models loaded after ``loaded_keys()`` returned ``before`` (a command's own models)."""
    with _LOCK:
        new = [e for k, e in _ENTRIES.items() if k not in before]
    closed = []
    for e in new:
        closed += unload(e.spec)
    return closed


def _at_exit() -> None:
    """Interpreter exit: no new loads, close every model, then join any worker a close left running."""
    from .worker import join_all_workers

    _EXITING.set()
    unload_all()
    join_all_workers()


def loaded() -> list[dict[str, Any]]:
    """What is loaded now: name, backend, open handles, kept."""
    with _LOCK:
        return [{"name": e.spec.name, "backend": e.spec.backend, "handles": e.handles, "kept": e.kept}
                for e in _ENTRIES.values() if e.backend is not None]


atexit.register(_at_exit)  # before finalisation: workers joined, nothing native left running
