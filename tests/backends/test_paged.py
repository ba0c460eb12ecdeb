"""Continuous batching by transformers' own manager (``backends.paged.PagedWorker``, ``batching="paged"``) on
SmolLM2-135M-Instruct: the manager's greedy text is ``StepWorker``'s, a late request starts before the running ones
end, and what the manager cannot honour (a seed, a JSON schema) takes the ``StepWorker`` inside, on the same model at
the same time. Few tokens and tiny prompts: the library's CPU path is slower than the workbench's own."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import workbench as wb
from workbench.backends.local import LocalModel
from workbench.backends.paged import PagedWorker
from workbench.backends.stepper import StepWorker
from workbench.errors import BackendError
from workbench.types import Failure, GenerateConfig

ASKS = ["What is the capital of France?", "Say hello.", "Name a colour.", "Count from 1 to 30, separated by commas."]


@pytest.fixture(scope="module")
def models(smol_dir):
    spec = wb.load_registry().models["smol-offline"]
    paged, step = LocalModel(spec, batching="paged"), LocalModel(spec, batching="step")
    yield paged, step
    paged.close()
    step.close()


def msgs(text: str):
    return wb.Prompt(text).messages()


def greedy(n: int, **kw) -> GenerateConfig:
    return GenerateConfig(max_new_tokens=n, temperature=0, **kw)


async def test_paged_serves_smollm2_and_its_greedy_text_is_the_step_paths(models):
    paged, step = models
    assert paged.batching == "paged" and isinstance(paged.worker, PagedWorker)
    assert isinstance(paged.worker.fallback, StepWorker)
    before = dict(paged.worker.routed)
    got = await asyncio.gather(*(paged.complete(msgs(q), greedy(16)) for q in ASKS[:3]))
    want = [await step.complete(msgs(q), greedy(16)) for q in ASKS[:3]]
    assert [r.text for r in got] == [r.text for r in want]
    assert [(r.finish_reason, r.usage.completion_tokens) for r in got] == \
        [(r.finish_reason, r.usage.completion_tokens) for r in want]
    assert all(r.usage.prompt_tokens > 0 and r.ttft_s is not None for r in got)
    assert paged.worker.routed["paged"] - before["paged"] == 3 and paged.worker.routed["fallback"] == before["fallback"]


async def test_a_late_request_starts_before_the_running_ones_end(models):
    paged, _ = models
    first: dict[str, float] = {}
    t0 = time.monotonic()

    async def run(q: str, key: str, n: int):
        pieces = 0
        async for chunk in paged._stream(msgs(q), greedy(n, min_new_tokens=n)):
            if getattr(chunk, "text", ""):
                pieces += 1
                first.setdefault(key, time.monotonic() - t0)
        return time.monotonic() - t0, chunk  # the StreamEnd

    long = [asyncio.create_task(run(ASKS[3], f"long{i}", 40)) for i in range(3)]
    while "long0" not in first:
        await asyncio.sleep(0.01)
    late, _ = await run(ASKS[0], "late", 4)
    ends = await asyncio.gather(*long)
    assert first["late"] < min(t for t, _ in ends) and late < min(t for t, _ in ends), (first, ends)
    # min_new_tokens is honoured in the manager (our processor holds end-of-text back)
    assert all(end.usage.completion_tokens == 40 and end.finish_reason == "length" for _, end in ends)
    assert paged.worker.min_new_tokens_in_manager and "min_new_tokens" not in paged.worker.fallback_reasons


async def test_temperature_is_per_request_and_a_seeded_request_takes_the_step_path(models):
    paged, step = models
    w = paged.worker
    n_paged, n_fallback = w.routed["paged"], w.routed["fallback"]
    seeded = GenerateConfig(max_new_tokens=12, temperature=0.9, seed=7)
    hot, cold, seeded_paged = await asyncio.gather(
        paged.complete(msgs(ASKS[2]), GenerateConfig(max_new_tokens=12, temperature=1.2, top_p=0.9)),
        paged.complete(msgs(ASKS[0]), greedy(12)),
        paged.complete(msgs(ASKS[2]), seeded))
    assert hot.ok and hot.usage.completion_tokens > 0
    assert cold.text == (await step.complete(msgs(ASKS[0]), greedy(12))).text  # greedy next to a sampled row
    assert w.routed["paged"] - n_paged == 2 and w.routed["fallback"] - n_fallback == 1
    assert w.fallback_reasons[-1] == "seed"
    assert seeded_paged.text == (await step.complete(msgs(ASKS[2]), seeded)).text  # its own generator, as on step


async def test_a_schema_request_takes_the_fallback_and_returns_valid_json(models):
    paged, _ = models
    schema = {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B"]},
                                               "score": {"type": "integer"}},
              "required": ["winner", "score"], "additionalProperties": False}
    free, bound = await asyncio.gather(paged.complete(msgs(ASKS[3]), greedy(24)),
                                       paged.complete(msgs("Which is better, A or B? Reply in JSON."),
                                                      greedy(40, json_schema=schema)))
    assert paged.worker.fallback_reasons[-1] == "json_schema"
    verdict = json.loads(bound.text)
    assert verdict["winner"] in ("A", "B") and isinstance(verdict["score"], int)
    assert free.ok and free.usage.completion_tokens == 24


async def test_a_prompt_past_the_context_fails_alone(models):
    paged, _ = models
    ok, too_long = await asyncio.gather(paged.complete(msgs(ASKS[0]), greedy(4)),
                                        paged.complete(msgs("word " * 9000), greedy(4)))
    assert ok.ok and isinstance(too_long, Failure) and "context" in too_long.reason


async def test_a_caller_gone_is_cancelled_and_close_ends_every_request_in_flight(smol_dir):
    model = LocalModel(wb.load_registry().models["smol-offline"], batching="paged")
    cfg = greedy(200, min_new_tokens=200)
    stream = model._stream(msgs(ASKS[3]), cfg)
    await stream.__anext__()
    await stream.aclose()  # the caller went away: cancelled in the manager
    for _ in range(100):
        if "cancelled" in model.worker.finish_reasons:
            break
        await asyncio.sleep(0.05)
    assert "cancelled" in model.worker.finish_reasons
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    running = [asyncio.create_task(model.complete(msgs(q), cfg)) for q in ASKS[:2]]
    running.append(asyncio.create_task(model.complete(msgs(ASKS[2]), greedy(200, json_schema=schema))))
    while len(model.worker._live) < 2 or not model.worker.fallback._rows:
        await asyncio.sleep(0.01)
    t = time.monotonic()
    await asyncio.wait_for(asyncio.to_thread(model.close), 60)
    results = await asyncio.wait_for(asyncio.gather(*running), 30)
    assert time.monotonic() - t < 60
    assert all(isinstance(r, Failure) and "unloaded" in r.reason for r in results), results
    assert not model.worker.alive and not model.worker.fallback.alive
    with pytest.raises(BackendError, match="closed"):
        model.worker.submit(None)  # type: ignore[arg-type]
