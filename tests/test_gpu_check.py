"""``make gpu-check`` without a GPU: the same script at toy size on the CPU, in this environment and in one that holds
only the device image's packages plus the wheels ``make gpu-wheels`` carries (what the lent GPU machine has)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_wheels  # noqa: E402


def check_figures(out: Path) -> dict:
    res = json.loads(out.read_text())
    assert res["errors"] == {} and res["skipped"] == [], res["errors"]
    assert res["size"] == "toy (CPU)" and res["bandwidth"]["bytes_per_s"] > 1e8
    m = res["memory"]
    assert abs(m["per_layer_over_plan"] - 1) < 0.05, m  # the plan holds at toy size too
    assert m["extrapolated_48_layers_gib"] > m["loaded_gib"]
    d = res["decode"]
    assert set(d["batch"]) == {"1", "4", "16"} and d["batch"]["16"]["tokens"] == 16 * 32
    assert 0 < d["batch1_over_bound"] and d["bytes_per_token"] > 0
    v = res["vision"]
    assert v["vision_dtypes"] and "nf4" in v["vision_dtypes"] and 0 <= v["top1_agreement"] <= 1
    assert v["positions"] > 10 and -1 <= v["cosine_min"] <= v["cosine_mean"] <= 1
    f = res["fusion"]
    assert f["members"] == 3 and f["wall_over_slowest_member"] >= 1
    b = res["batching"]
    assert b["step"]["late_over_idle"] > 0 and b["batch"]["late_over_idle"] > 0 and b["throughput_step_over_batch"] > 0
    # on a CPU nothing counts GPU memory: the close() goal is a GPU's
    assert set(res["goals"]) == {"per_layer_within_5pct_of_plan", "batch1_at_least_25pct_of_bound"}
    return res


def test_the_gpu_check_runs_at_toy_size_on_the_cpu(tmp_path, smol_dir):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dir", str(tmp_path / "w"),
                           "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    res = check_figures(out)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == res  # the last line is the JSON
    assert res["fusion"]["model"] == "SmolLM2-135M-Instruct"  # make install put it in the cache
    assert res["fusion"]["ok"] and res["fusion"]["constrained_judge"]


def test_gpu_wheels_carries_what_the_device_lacks_and_the_check_runs_with_only_that(tmp_path):
    """The wheel download is pinned to the lock and within the carry limit; then the toy check runs under
    ``python -S`` with nothing importable but the device image's packages, the installed wheels and the tree."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_wheels.py")], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the file the lock pins" in done.stdout and "--target /tmp/site" in done.stdout
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["bitsandbytes"]
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--target", str(site), *map(str, wheels)], check=True, timeout=300)
    device = tmp_path / "device-image"
    linked = gpu_wheels.device_like_site(device)
    assert {"torch", "transformers", "accelerate"} <= set(linked) and "gradio" not in linked
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(device), str(ROOT)])
    env["WORKBENCH_CACHE"] = str(tmp_path / "empty-cache")  # as on the device: no SmolLM2 there
    probe = subprocess.run([sys.executable, "-S", "-c", "import gradio"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0  # the environment really lacks what the device lacks
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, "-S", str(ROOT / "benchmarks" / "gpu_check.py"), "--dir",
                           str(tmp_path / "w"), "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    res = check_figures(out)
    assert res["versions"]["bitsandbytes"] is not None
    assert "random-weight" in res["fusion"]["model"] and res["batching"]["model"] == res["fusion"]["model"]


pytestmark = pytest.mark.filterwarnings("ignore")
