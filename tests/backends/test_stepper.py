"""Continuous batching (``backends.stepper.StepWorker``) on SmolLM2-135M-Instruct, a real trained model: a request
joins a running batch at the next token, and every row keeps its own settings. The batcher it replaces
(``BatchWorker``, ``batching="batch"``) is the reference where the two must agree."""

from __future__ import annotations

import asyncio
import time

import pytest

import workbench as wb
from workbench.backends.local import LocalModel
from workbench.backends.stepper import StepWorker, supports
from workbench.errors import BackendError, ConfigError
from workbench.types import Failure, GenerateConfig

ASKS = ["What is the capital of France?", "Say hello.", "Name a colour.", "What is 2 + 2?",
        "Count from 1 to 30, separated by commas."]


@pytest.fixture(scope="module")
def models(smol_dir):
    spec = wb.load_registry().models["smol-offline"]
    step, batch = LocalModel(spec, batching="step"), LocalModel(spec, batching="batch")
    yield step, batch
    step.close()
    batch.close()


def msgs(text: str, persona: str | None = None):
    return wb.Prompt(text).messages(persona)


def greedy(n: int, **kw) -> GenerateConfig:
    return GenerateConfig(max_new_tokens=n, temperature=0, **kw)


def test_smollm2_is_served_by_the_step_path_and_llama4_is_not(models, tiny_dir):
    step, batch = models
    tiny = wb.load_model("tiny-offline")
    assert isinstance(step.worker, StepWorker) and step.batching == "step" and supports(step.hf_model)
    assert batch.batching == "batch" and not isinstance(batch.worker, StepWorker)
    assert tiny.batching == "batch" and not supports(tiny.hf_model)  # image + text, chunked attention
    with pytest.raises(ConfigError, match="step, batch, paged"):
        LocalModel(wb.load_registry().models["smol-offline"], batching="bogus")


async def test_greedy_text_is_the_libraries_alone_and_in_a_batch_that_others_join(models):
    """One request alone gives transformers' own generate text; in a batch that rows join and leave at other
    steps, each row gives the text it gives alone."""
    step, batch = models
    alone = {q: (await step.complete(msgs(q), greedy(40))).text for q in ASKS}
    for q in ASKS[:2]:
        assert (await batch.complete(msgs(q), greedy(40))).text == alone[q]
    started = time.monotonic()

    async def later(q: str, delay: float):
        await asyncio.sleep(delay)
        return await step.complete(msgs(q), greedy(40))

    joins = step.worker.batches_run
    results = await asyncio.gather(*(later(q, 0.3 * i) for i, q in enumerate(ASKS)))
    assert time.monotonic() - started < 60
    assert [r.text for r in results] == [alone[q] for q in ASKS]
    assert step.worker.batches_run - joins >= 2  # they did join at different steps
    assert max(step.worker.step_sizes[-40:]) >= 2  # and shared steps


async def test_a_late_request_starts_before_the_running_batch_ends(models):
    step, _ = models
    first: dict[str, float] = {}
    t0 = time.monotonic()

    async def run(q: str, key: str, n: int):
        async for chunk in step._stream(msgs(q), greedy(n, min_new_tokens=n)):
            if getattr(chunk, "text", "") and key not in first:
                first[key] = time.monotonic() - t0
        return time.monotonic() - t0

    long = [asyncio.create_task(run(ASKS[4], f"long{i}", 80)) for i in range(4)]
    while "long0" not in first:
        await asyncio.sleep(0.01)
    late = await run(ASKS[0], "late", 4)
    ends = await asyncio.gather(*long)
    assert first["late"] < min(ends) and late < min(ends), (first, ends)


async def test_each_row_keeps_its_temperature_seed_and_token_limits(models):
    step, _ = models
    sampled = GenerateConfig(max_new_tokens=24, temperature=0.9, seed=7)
    alone = await step.complete(msgs(ASKS[2]), sampled)
    crowd = await asyncio.gather(step.complete(msgs(ASKS[2]), sampled),
                                 step.complete(msgs(ASKS[1]), greedy(30)),
                                 step.complete(msgs(ASKS[0]), GenerateConfig(max_new_tokens=24, temperature=1.3, seed=1)),
                                 step.complete(msgs(ASKS[3]), greedy(12, min_new_tokens=12)))
    assert crowd[0].text == alone.text  # its own generator: the same sample whoever shares the batch
    assert crowd[3].usage.completion_tokens == 12 and crowd[3].finish_reason == "length"
    short = await step.complete(msgs(ASKS[4]), greedy(5))
    assert short.finish_reason == "length" and short.usage.completion_tokens == 5


async def test_a_json_schema_row_decodes_valid_json_next_to_free_rows(models):
    import json

    step, _ = models
    schema = {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B"]},
                                               "score": {"type": "integer"}},
              "required": ["winner", "score"], "additionalProperties": False}
    free, bound = await asyncio.gather(step.complete(msgs(ASKS[4]), greedy(40)),
                                       step.complete(msgs("Which is better, A or B? Reply in JSON."),
                                                     greedy(40, json_schema=schema)))
    assert free.text == (await step.complete(msgs(ASKS[4]), greedy(40))).text
    verdict = json.loads(bound.text)
    assert verdict["winner"] in ("A", "B") and isinstance(verdict["score"], int)


async def test_cancelling_one_row_leaves_the_others_and_a_closed_model_answers_every_caller(smol_dir):
    model = LocalModel(wb.load_registry().models["smol-offline"], batching="step")
    cfg = greedy(200, min_new_tokens=200)
    stream = model._stream(msgs(ASKS[4]), cfg)
    other = asyncio.create_task(model.complete(msgs(ASKS[0]), greedy(30, min_new_tokens=30)))
    await stream.__anext__()
    await stream.aclose()  # the caller went away: its row stops at the next step
    done = await other
    assert done.ok and done.usage.completion_tokens == 30
    for _ in range(100):
        if "cancelled" in model.worker.finish_reasons:
            break
        await asyncio.sleep(0.05)
    assert "cancelled" in model.worker.finish_reasons
    running = [asyncio.create_task(model.complete(msgs(q), cfg)) for q in ASKS[:3]]
    while not model.worker.steps_run or not model.worker._rows:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(model.close)
    results = await asyncio.gather(*running)
    assert all(isinstance(r, Failure) and "unloaded" in r.reason for r in results), results
    assert not model.worker.alive
    with pytest.raises(BackendError, match="closed"):
        model.worker.submit(None)  # type: ignore[arg-type]


async def test_a_prompt_past_the_context_fails_alone(models):
    step, _ = models
    ok, too_long = await asyncio.gather(step.complete(msgs(ASKS[0]), greedy(8)),
                                        step.complete(msgs("word " * 9000), greedy(8)))
    assert ok.ok and isinstance(too_long, Failure) and "context" in too_long.reason
