"""``make gpu-wheels``: the wheels the lent GPU machine lacks, pinned to the lock, and the one command to run there.

    python scripts/gpu_wheels.py [--dest .whl] [--python 3.12]

The device machine (``device`` tool, see ``../shared/FACTS.md``) has Python 3.12, PyTorch, transformers and
accelerate but not bitsandbytes, and nothing can be downloaded there. This downloads exactly ``DEVICE_LACKS`` at
the versions ``requirements.lock`` pins (checked against the lock's sha256 where the lock lists that file: a
py3-none wheel is the same file for 3.11 and 3.12), into an ignored folder, checks the total with the working tree
against the carry limit (64 MiB a call), and prints the command to give the ``device`` tool: install the wheels to
a target folder, put it and the working tree on ``PYTHONPATH``, run ``benchmarks/gpu_check.py`` with a timeout.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: what benchmarks/gpu_check.py needs that the device image lacks (its package list: the device tool's KINDS.md)
DEVICE_LACKS = ("bitsandbytes",)
CARRY_LIMIT = 64 * 2**20
#: the Python packages of the device image ('cuda', as the device tool's KINDS.md lists them, 2026-11-17)
DEVICE_IMAGE = tuple("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split())
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64")


def pinned(name: str, lock: Path = ROOT / "requirements.lock") -> tuple[str, set[str]]:
    """The lock's version of ``name`` and the sha256 hashes it allows."""
    text = lock.read_text()
    m = re.search(rf"^{re.escape(name)}==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]+)+)", text, re.M | re.I)
    if not m:
        raise SystemExit(f"{name} is not pinned in {lock.name}")
    return m.group(1), set(re.findall(r"sha256:([0-9a-f]+)", m.group(2)))


def tree_bytes() -> int:
    """The working tree as the device tool carries it: tracked files and untracked ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sum((ROOT / f).stat().st_size for f in out.split("\0") if f and (ROOT / f).is_file())


def device_like_site(dest: Path) -> list[str]:
    """A folder holding only the device image's packages (links to their files here), so that ``python -S`` with it
    on ``PYTHONPATH`` imports what the device could import and nothing else. A listed package's own requirements
    come with it (the image satisfies them with its own versions; this environment's versions may need others,
    e.g. a newer huggingface_hub's httpx2); nothing else does. Returns the distributions linked."""
    import importlib.metadata as md
    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    dists = {norm(d.metadata["Name"] or ""): d for d in md.distributions()}
    todo = [norm(n) for n in DEVICE_IMAGE]
    wanted: set[str] = set()
    while todo:
        name = todo.pop()
        if name in wanted or name not in dists:
            continue
        wanted.add(name)
        for spec in dists[name].requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(norm(req.name))
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(wanted):
        dist = dists[name]
        base = Path(str(dist.locate_file("")))
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            src, dst = base / top, dest / top
            if src.exists() and not dst.exists() and top != "__pycache__" and not top.endswith(".pth"):
                dst.symlink_to(src)
    return sorted(wanted)


def command(dest: str, timeout_s: int) -> str:
    return (f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
            f"{dest}/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && "
            f"timeout {timeout_s} python3 benchmarks/gpu_check.py --budget-s {timeout_s - 120} "
            f"--out $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dest", default=".whl", help="an ignored folder in the repository (carried by name)")
    ap.add_argument("--python", default="3.12", help="the device's Python")
    ap.add_argument("--timeout-s", type=int, default=540)
    a = ap.parse_args()
    dest = ROOT / a.dest
    dest.mkdir(exist_ok=True)
    ignored = subprocess.run(["git", "check-ignore", "-q", a.dest + "/x.whl"], cwd=ROOT).returncode == 0
    if not ignored:
        raise SystemExit(f"{a.dest}/ is not ignored by git: add it to .gitignore (the device tool carries it by name)")
    for old in dest.glob("*.whl"):
        old.unlink()
    for name in DEVICE_LACKS:
        version, hashes = pinned(name)
        plat = [x for p in PLATFORMS for x in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", a.python, "--implementation", "cp", *plat, "-d", str(dest),
                        f"{name}=={version}"], check=True)
        got = [w for w in dest.glob("*.whl") if w.name.lower().startswith(name.lower().replace("-", "_") + "-")]
        if len(got) != 1:
            raise SystemExit(f"expected one {name} wheel in {dest}, found {[w.name for w in got]}")
        digest = hashlib.sha256(got[0].read_bytes()).hexdigest()
        same = digest in hashes
        print(f"{got[0].name}: {got[0].stat().st_size / 2**20:.1f} MiB, "
              f"{'the file the lock pins' if same else 'not a file the lock lists (another platform tag)'}")
        if not same and "py3-none" in got[0].name:
            raise SystemExit(f"{got[0].name}: sha256 {digest} is not in the lock for {name}=={version}")
    wheels = sum(w.stat().st_size for w in dest.glob("*.whl"))
    tree = tree_bytes()
    total = wheels + tree
    print(f"carry: wheels {wheels / 2**20:.1f} MiB + working tree {tree / 2**20:.1f} MiB = {total / 2**20:.1f} MiB "
          f"(limit {CARRY_LIMIT / 2**20:.0f} MiB)")
    if total > CARRY_LIMIT:
        raise SystemExit("over the carry limit: the device tool would refuse it")
    print("\nThe device call (the device tool's `run`), with carry [\"" + a.dest + "\"] and timeout_s "
          f"{a.timeout_s + 30}:\n")
    print(command(a.dest, a.timeout_s))


if __name__ == "__main__":
    main()
