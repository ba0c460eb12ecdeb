"""The environment a result came from: code, Python, packages, device, models, seed.

Every stored run (``FusionResult.environment``), evaluation frame (``df.attrs["environment"]``), report and the
API's ``fusion`` object carries one such record, so a number can be tied to what produced it. inspect_ai's eval
logs record ``packages`` and the git ``revision``; this record adds the device and each model's identity:

- a local checkpoint: the Hub revision it was loaded from, or the sha256 of its files (a content fingerprint for
  checkpoints over ``FULL_HASH_BYTES``, said as such); a pinned file (SmolLM2's GGUF) by its pinned sha256;
- a remote model: its name and the base URL's host (local mode only: a public server keeps its hosts to itself).

Nothing here imports torch: the device's GPUs are read from torch only when torch is already loaded (a local model
ran); a remote-only run says "not checked". Cheap parts are cached per process (the git state of the checkout the
code runs from is read once).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: the packages whose versions each record names (their absence is recorded as None)
PACKAGES = ("torch", "transformers", "accelerate", "bitsandbytes", "openai", "httpx", "httpx2", "gradio", "fastapi",
            "xgrammar", "gguf", "tokenizers", "safetensors", "huggingface-hub", "numpy", "pandas")
#: checkpoints up to this size are hashed in full; larger ones get a fingerprint (names, sizes, safetensors headers)
FULL_HASH_BYTES = 2 * 1024**3
RECORD_VERSION = 1


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The workbench's version, and the git commit and dirty flag of the checkout it runs from (None outside one)."""
    try:
        version = md.version("fusion-workbench")
    except md.PackageNotFoundError:
        version = None
    root = Path(__file__).resolve().parent.parent
    commit = dirty = diff_sha = None
    if (root / ".git").exists():
        try:
            git = ["git", "-C", str(root)]
            commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=10).stdout.strip() or None
            diff = subprocess.run(git + ["diff", "HEAD"], capture_output=True, timeout=30)
            if diff.returncode == 0:
                dirty = bool(diff.stdout.strip())
                diff_sha = hashlib.sha256(diff.stdout).hexdigest()[:12] if dirty else None
        except (OSError, subprocess.SubprocessError):
            pass
    # diff_sha: which uncommitted changes (two dirty runs at one commit ran the same code only if it matches)
    return {"workbench": version, "commit": commit, "dirty": dirty, "diff_sha": diff_sha}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    """{package: installed version or None}, for ``PACKAGES``."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device() -> dict[str, Any]:
    """CPU model and core count; GPU names and CUDA version when torch is loaded (else ``gpus`` is None)."""
    out: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": None, "cuda": None}
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            out["cuda"] = torch.version.cuda
            out["gpus"] = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                           if torch.cuda.is_available() else [])
        except Exception:  # a broken CUDA setup must not sink a run's record
            out["gpus"] = None
    return out


def _sha256_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def _fingerprint(files: list[Path]) -> str:
    """Names, sizes and safetensors headers (tensor names, dtypes, shapes, offsets): no weight bytes read."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
        if f.suffix == ".safetensors":
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                h.update(fh.read(min(n, 100_000_000)))
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _checkpoint_digest(path: str, stamp: tuple) -> tuple[str, str]:
    root = Path(path)
    files = sorted((p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.relative_to(root).as_posix())
    total = sum(p.stat().st_size for p in files)
    if total <= FULL_HASH_BYTES:
        return "sha256", _sha256_files(files)
    return "fingerprint", _fingerprint(files)


def checkpoint_identity(path: Path) -> dict[str, Any]:
    """A local checkpoint directory's identity: its Hub revision when it is a Hub snapshot, else a digest."""
    path = Path(path)
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return {"hub_revision": path.name}
    stamp = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file()))
    kind, digest = _checkpoint_digest(str(path.resolve()), stamp)
    out: dict[str, Any] = {kind: digest}
    tiny = path / "WORKBENCH_TINY.json"
    if tiny.is_file():
        out["built"] = json.loads(tiny.read_text())  # the tiny model's recipe version and seed
    return out


def model_identity(model: Any, public: bool = False, spec: Any = None) -> dict[str, Any]:
    """One model's identity from its loaded backend (or handle, or a spec when it never loaded). ``spec``: the
    spec the caller named (a handle shares one loaded model among equal specs, which may carry other names)."""
    spec = spec if spec is not None else getattr(model, "spec", model)
    out: dict[str, Any] = {"name": spec.name, "backend": spec.backend, "model": spec.model,
                           "quant": getattr(spec, "quant", None)}
    if spec.backend == "openai" and spec.base_url:  # known from the spec alone, loaded or not
        from urllib.parse import urlsplit

        out["host"] = urlsplit(spec.base_url).netloc.rpartition("@")[2] or None
    ident = getattr(model, "identity", None)
    if callable(ident):
        try:
            out.update(ident())
        except Exception as exc:  # a vanished file: say so rather than fail the run's record
            out["identity_error"] = f"{type(exc).__name__}: {exc}"[:200]
    if public:
        out.pop("host", None)
        out.pop("checkpoint", None)
        if spec.backend == "local" and Path(str(spec.model)).is_absolute():
            out["model"] = Path(str(spec.model)).name  # the host's own folder layout stays on the host
    return out


def environment(models: Iterable[Any] = (), seed: int | None = None, public: bool = False) -> dict[str, Any]:
    """The environment record: code, Python, platform, package versions, device, models, seed.

    Args:
        models: loaded backends or handles, specs of models that failed to load, or (spec, backend or None)
            pairs; each recorded once by the spec's name.
        seed: the run's seed (None: a fresh one each run, so sampled text is not reproducible).
        public: a public server's record: no endpoint hosts or host paths.
    """
    seen: dict[str, dict[str, Any]] = {}
    for m in models:
        spec, backend = m if isinstance(m, tuple) else (getattr(m, "spec", m), m)
        if spec.name not in seen:
            seen[spec.name] = model_identity(backend if backend is not None else spec, public, spec)
    return {"record_version": RECORD_VERSION, **code_version(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": f"{platform.system()} {platform.machine()}",
            "packages": package_versions(), "device": device(), "models": list(seen.values()), "seed": seed}


def env_id(env: dict[str, Any]) -> str | None:
    """A short id of a record (everything but the seed): rows and runs with one id share one environment."""
    if not env:
        return None
    body = json.dumps({k: v for k, v in env.items() if k != "seed"}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two environment records that bears on results (empty records compare as unknown)."""
    if not a or not b:
        return ["an environment record is missing (a run from before records were kept)"] if (a or b) else []
    out = []
    for key in ("workbench", "commit", "python", "platform"):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} vs {b.get(key)}")
    if (a.get("dirty") or b.get("dirty")) and a.get("diff_sha") != b.get("diff_sha"):
        out.append("different uncommitted changes in the code")
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    for name in sorted(set(pa) | set(pb)):
        if pa.get(name) != pb.get(name):
            out.append(f"{name}: {pa.get(name)} vs {pb.get(name)}")
    da, db = a.get("device") or {}, b.get("device") or {}
    for key in ("cpu", "gpus", "cuda"):
        if da.get(key) is not None and db.get(key) is not None and da.get(key) != db.get(key):
            out.append(f"device {key}: {da.get(key)} vs {db.get(key)}")
    ma = {m["name"]: m for m in a.get("models") or []}
    mb = {m["name"]: m for m in b.get("models") or []}
    for name in sorted(set(ma) & set(mb)):  # what both records know (a model reused from a stored run: its spec)
        keys = (set(ma[name]) & set(mb[name])) - {"identity_error"}
        ia, ib = ({k: m[name][k] for k in keys} for m in (ma, mb))
        if ia != ib:
            out.append(f"model {name}: {_short(ia)} vs {_short(ib)}")
    return out


def _short(ident: dict[str, Any]) -> str:
    for key in ("sha256", "hub_revision", "fingerprint", "host", "model"):
        if ident.get(key):
            return f"{key} {str(ident[key])[:12]}"
    return "?"


def summary_lines(env: dict[str, Any]) -> list[str]:
    """The record as short lines for a header (reports, exports, ``workbench runs show``)."""
    if not env:
        return ["environment: not recorded (a run from before records were kept)"]
    commit = env.get("commit")
    code = f"workbench {env.get('workbench') or '?'}"
    if commit:
        code += f" at {commit[:12]}{' (uncommitted changes)' if env.get('dirty') else ''}"
    pk = env.get("packages") or {}
    packages = ", ".join(f"{k} {v}" for k, v in pk.items() if v and k in (
        "torch", "transformers", "openai", "gradio", "bitsandbytes", "xgrammar"))
    dev = env.get("device") or {}
    gpus = dev.get("gpus")
    device_text = (", ".join(gpus) + f" (CUDA {dev.get('cuda')})") if gpus else \
        f"CPU {dev.get('cpu', '?')}" + (" (GPUs not checked)" if gpus is None else "")
    lines = [f"code: {code}; {env.get('python', '?')} on {env.get('platform', '?')}",
             f"packages: {packages}", f"device: {device_text}"]
    for m in env.get("models") or []:
        lines.append(f"model {m['name']}: {m.get('backend')} {m.get('model')}"
                     + (f" @ {m['host']}" if m.get("host") else "") + f" ({_short(m)})")
    lines.append(f"seed: {env.get('seed') if env.get('seed') is not None else 'none (fresh each run)'}")
    return lines
