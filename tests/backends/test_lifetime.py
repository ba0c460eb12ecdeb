"""Loaded models have a lifetime: shared handles, close / with / unload, workers joined, memory returned."""

import asyncio
import json
import subprocess
import sys
import threading

import pytest

import workbench as wb
from workbench.backends import ModelHandle, load_model, loaded, unload
from workbench.errors import BackendError
from workbench.specs import ModelSpec


@pytest.fixture
def spec(tiny_dir, request):
    """A spec of its own (the tiny checkpoint by path, under a test-unique name), so no other test shares it."""
    return ModelSpec(name=f"lifetime-{request.node.name}", backend="local", model=str(tiny_dir), dtype="float32")


def workers(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"workbench-{name}"]


async def test_members_share_one_copy_and_the_last_handle_unloads(spec):
    a, b = load_model(spec), load_model(spec)
    assert isinstance(a, ModelHandle) and a.backend is b.backend  # one copy of the weights, one worker
    assert [m["handles"] for m in loaded() if m["name"] == spec.name] == [2]
    assert len(workers(spec.name)) == 1
    a.close()
    a.close()  # idempotent
    assert a.closed and not b.closed
    r = await b.generate("hi", max_new_tokens=3)
    assert r.ok and r.usage.completion_tokens > 0
    b.close()
    assert workers(spec.name) == []  # joined, not just told to stop
    assert spec.name not in [m["name"] for m in loaded()]
    r = await b.generate("hi", max_new_tokens=3)
    assert not r.ok and r.kind == "closed"


async def test_with_block_unloads_at_its_end(spec):
    with load_model(spec) as m:
        assert (await m.generate("hi", max_new_tokens=2)).ok
        assert m.hf_model is not None and workers(spec.name)
    assert workers(spec.name) == [] and m.closed
    with pytest.raises(BackendError, match="load it again"):
        _ = m.hf_model


async def test_kept_models_stay_until_unloaded_and_a_new_load_works(spec):
    first = load_model(spec, keep=True)
    first.close()
    assert workers(spec.name), "a kept model stays loaded after its handles close"
    again = load_model(spec)
    assert (await again.generate("hi", max_new_tokens=2)).ok
    assert unload(spec.name) == [spec.name]
    assert workers(spec.name) == [] and again.closed
    with load_model(spec) as fresh:  # loads again, from scratch
        assert (await fresh.generate("hi", max_new_tokens=2)).ok


async def test_a_dropped_handle_counts_as_closed(spec):
    load_model(spec)  # not kept, not held
    assert workers(spec.name) == []


async def test_unloading_during_a_generation_fails_that_member_and_joins_the_worker(spec):
    m = load_model(spec)
    task = asyncio.ensure_future(m.generate("long", max_new_tokens=1900, min_new_tokens=1900))
    for _ in range(500):
        if m.worker.batches_run:
            break
        await asyncio.sleep(0.02)
    assert m.worker.batches_run == 1, "the generation never started"
    await asyncio.to_thread(unload, spec.name)  # returns once the worker thread has ended
    assert workers(spec.name) == []
    r = await asyncio.wait_for(task, 30)
    assert not r.ok and r.kind == "closed" and "unloaded while generating" in r.reason
    again = await m.generate("hi", max_new_tokens=2)  # the handle is closed now: a Failure, not an exception
    assert not again.ok and again.kind == "closed" and "load it again" in again.reason


async def test_a_run_keeps_its_models_warm_and_unload_frees_them(spec):
    r = await wb.fuse("hi", [wb.Member(spec), wb.Member(spec, persona="Be brief.")], mode="vote", max_new_tokens=3)
    assert all(o.ok for o in r.outputs)
    assert [m["kept"] for m in loaded() if m["name"] == spec.name] == [True]
    assert len(workers(spec.name)) == 1  # two members, one loaded copy
    wb.unload(spec.name)
    assert workers(spec.name) == []


MEMORY_SCRIPT = r"""
import asyncio, json, os, sys
from pathlib import Path
import workbench as wb
from workbench.backends.tiny import build_tiny_causal_lm

def rss():
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

ckpt = Path(sys.argv[1])
if not (ckpt / "config.json").exists():
    build_tiny_causal_lm(ckpt, hidden_size=1024, intermediate_size=4096, num_hidden_layers=4)
spec = wb.ModelSpec(name="big-tiny", backend="local", model=str(ckpt), dtype="float32")

def cycle():
    with wb.load_model(spec) as m:
        assert asyncio.run(m.generate("hi", max_new_tokens=4)).ok
        return rss(), m.memory_report()["total_bytes"]

cycle()  # warm-up: imports, allocator arenas, kernels
start = rss()
peaks, model_bytes = [], 0
for _ in range(3):
    peak, model_bytes = cycle()
    peaks.append(peak)
print(json.dumps({"start": start, "end": rss(), "peaks": peaks, "model_bytes": model_bytes}))
"""


def test_load_close_load_again_returns_memory(tmp_path):
    """RSS after three load -> generate -> close cycles stays within 10 % of one model's size of where it
    started (after a warm-up cycle), while each loaded model shows up in RSS."""
    p = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "big")], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads(p.stdout.strip().splitlines()[-1])
    size = m["model_bytes"]
    assert size > 200e6  # large enough for a leak to show
    assert all(peak - m["start"] > 0.8 * size for peak in m["peaks"]), m  # the measurement sees a loaded model
    assert m["end"] - m["start"] < 0.1 * size, m
