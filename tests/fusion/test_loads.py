"""Loads: one lock per model, so a run that needs no local model never waits for one loading."""

import asyncio
import threading
import time

import workbench as wb
from workbench.backends import load_model, unload
from workbench.backends.openai_compat import OpenAICompatModel
from workbench.backends.registry import BACKENDS, register_backend
from workbench.events import Loading, RoundStart
from workbench.specs import Member, ModelSpec


async def test_a_remote_run_starts_while_another_model_loads(remote):
    started, release = threading.Event(), threading.Event()

    def slow_factory(spec):  # stands for a Scout load or an INT4 conversion
        started.set()
        release.wait(30)
        return OpenAICompatModel(spec)

    register_backend("slow-load", slow_factory)
    try:
        slow = ModelSpec(name="slow-loading", backend="slow-load", model="reply=x", base_url="http://127.0.0.1:9/v1")
        loader = threading.Thread(target=lambda: load_model(slow, keep=True), daemon=True)
        loader.start()
        assert started.wait(10)
        t0 = time.perf_counter()
        r = await wb.fuse("q", [Member(remote("reply=fast", name="remote-only"))], mode="vote")
        waited = time.perf_counter() - t0
        assert r.final_answer == "fast" and waited < 5, waited  # not blocked behind the 30 s load
    finally:
        release.set()
        loader.join(10)
        BACKENDS.pop("slow-load", None)
        unload("slow-loading")


async def test_a_cold_model_is_announced_before_it_loads(tiny_dir):
    spec = ModelSpec(name="cold-tiny", backend="local", model=str(tiny_dir), dtype="float32")
    unload(spec.name)
    events = [e async for e in wb.fuse_stream("hi", [Member(spec)], mode="vote", max_new_tokens=2)]
    kinds = [e.kind for e in events]
    assert isinstance(events[1], Loading) and events[1].models == ["cold-tiny"] and kinds.index("round_start") == 2
    again = [e.kind for e in [e async for e in wb.fuse_stream("hi", [Member(spec)], mode="vote", max_new_tokens=2)]]
    assert "loading" not in again  # kept warm
    unload(spec.name)
    assert isinstance(events[2], RoundStart)
    await asyncio.sleep(0)
