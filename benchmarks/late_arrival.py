"""Continuous batching vs the batcher it replaces, on one local model, measured side by side in one run.

    .venv/bin/python benchmarks/late_arrival.py [--model smol-offline] [--tokens 64] [--reps 3] [--paths step,batch]

The same checkpoint is loaded once per path: ``StepWorker`` (``step``: a request joins the running batch at the next
token), ``BatchWorker`` (``batch``: what is queued together runs as one ``generate`` call to its end) and, with
``--paths step,batch,paged`` (or any list of them), ``PagedWorker`` (``paged``: transformers' own continuous
batching manager). For each:

1. **Late arrival**: a 3-member run (three requests) arrives while a 4-member run (four requests, ``--tokens``
   tokens each) is mid-generation (after its first member streamed 8 tokens); its time to first token (the first
   text any of its members streams) over the same run's on the idle model. ``late_ttft_over_idle`` (the new path,
   ``step``) and ``late_ttft_over_idle_current`` (today's batcher, ``batch``), where measured; every path's in
   ``late_over_idle``. Goal: <= 1.5 for the new path.
2. **Throughput**: 1, 4 and 8 concurrent 3-member runs (3, 12, 24 requests, every answer forced to ``--tokens``
   tokens so that every path does the same work); completion tokens per second over the wall time, each path over
   the first one listed (``throughput_over_<first>``; with the default paths, ``throughput_step_over_batch``: new
   path over current, goal: no worse than 0.9).

Greedy decoding, SmolLM2-135M by default. Ratios only: these machines are noisy, and the two paths run in
alternation (``--reps`` times, the median kept). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import workbench as wb  # noqa: E402
from workbench.backends.local import LocalModel  # noqa: E402
from workbench.types import Failure, GenerateConfig, Message  # noqa: E402

QUESTIONS = ["What is 17 + 25?", "Name three primary colours.", "Why is the sky blue?", "What is a prime number?",
             "How many legs does a spider have?", "What is the capital of Italy?", "Explain gravity briefly.",
             "What is 9 times 7?"]
PERSONAS = ["You are a careful analyst.", "You are a skeptic.", "Answer concisely."]


def messages(i: int) -> list[Message]:
    return wb.Prompt(QUESTIONS[i % len(QUESTIONS)], system=PERSONAS[i % 3]).messages()


async def first_token(model: LocalModel, idxs: list[int], config: GenerateConfig, t0: float) -> float:
    """Seconds from ``t0`` to the first chunk any of the requests streams (each streams to its end)."""
    first: list[float] = []

    async def one(i: int) -> None:
        async for chunk in model._stream(messages(i), config):
            if not first and getattr(chunk, "text", ""):
                first.append(time.perf_counter() - t0)

    await asyncio.gather(*(one(i) for i in idxs))
    if not first:
        raise RuntimeError("no request streamed any text: a model that writes text is needed")
    return first[0]


async def late_arrival(model: LocalModel, tokens: int, temperature: float = 0.0,
                       seed: int | None = 0) -> tuple[float, float]:
    """(idle TTFT, late TTFT) of a 3-member run, in seconds. ``temperature`` > 0 samples (seeded unless ``seed`` is
    None: the paged path's manager serves only unseeded sampling): a random-weight model's greedy tokens are often all
    special ones, which stream no text."""
    cfg = GenerateConfig(max_new_tokens=tokens, min_new_tokens=tokens, temperature=temperature, seed=seed)
    t0 = time.perf_counter()
    idle = await first_token(model, [4, 5, 6], cfg, t0)
    started = asyncio.Event()
    seen = [0]

    async def busy(i: int) -> None:
        async for chunk in model._stream(messages(i), cfg):
            if getattr(chunk, "text", ""):
                seen[0] += 1
                if seen[0] >= 8:
                    started.set()

    running = asyncio.ensure_future(asyncio.gather(*(busy(i) for i in range(4))))
    waiting = asyncio.ensure_future(started.wait())
    await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        waiting.cancel()
        raise RuntimeError(f"the running 4-member batch streamed {seen[0]} pieces of text, not 8, before it ended: "
                           "more --tokens, or a model that writes text")
    t0 = time.perf_counter()
    late = await first_token(model, [4, 5, 6], cfg, t0)
    await running
    return idle, late


async def throughput(model: LocalModel, runs: int, tokens: int, temperature: float = 0.0,
                     seed: int | None = 0) -> float:
    """Completion tokens per second of ``runs`` concurrent 3-member runs."""
    cfg = GenerateConfig(max_new_tokens=tokens, min_new_tokens=tokens, temperature=temperature, seed=seed)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(model.complete(messages(i), cfg) for i in range(3 * runs)))
    wall = time.perf_counter() - t0
    failed = [r for r in results if isinstance(r, Failure)]
    assert not failed, failed[0]
    return sum(r.usage.completion_tokens for r in results if not isinstance(r, Failure)) / wall


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smol-offline")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runs", default="1,4,8", help="concurrent 3-member runs for the throughput figure")
    ap.add_argument("--paths", default="step,batch", help="the batchers to measure (of step, batch, paged)")
    a = ap.parse_args()
    paths = [p.strip() for p in a.paths.split(",") if p.strip()]
    spec = wb.load_registry().models[a.model]
    models = {p: LocalModel(spec, batching=p) for p in paths}
    for p, m in models.items():
        assert m.batching == p, f"{a.model} cannot be served by the {p} path"
    warm = GenerateConfig(max_new_tokens=4, temperature=0)
    for m in models.values():
        await m.complete(messages(0), warm)
    ttft: dict[str, list[tuple[float, float]]] = {k: [] for k in models}
    tps: dict[str, dict[int, list[float]]] = {k: {} for k in models}
    runs = [int(x) for x in a.runs.split(",")]
    for rep in range(a.reps):
        for name, m in models.items():
            idle, late = await late_arrival(m, a.tokens)
            ttft[name].append((idle, late))
            print(f"rep {rep} {name:5s} idle TTFT {idle:.2f} s, late TTFT {late:.2f} s ({late / idle:.2f}x)",
                  flush=True)
        for n in runs:
            for name, m in models.items():
                tps[name].setdefault(n, []).append(await throughput(m, n, a.tokens))
            print(f"rep {rep} {n} run(s): " + ", ".join(f"{p} {tps[p][n][-1]:.1f} tok/s" for p in paths), flush=True)

    def ratio(name: str) -> float:
        return statistics.median(late / idle for idle, late in ttft[name])

    def speed(name: str, n: int) -> float:
        return statistics.median(tps[name][n])

    out: dict = {"model": a.model, "tokens": a.tokens, "reps": a.reps, "paths": paths}
    if "step" in models:
        out["late_ttft_over_idle"] = round(ratio("step"), 3)
    if "batch" in models:
        out["late_ttft_over_idle_current"] = round(ratio("batch"), 3)
    out.update({"late_over_idle": {k: round(ratio(k), 3) for k in models},
                "idle_ttft_s": {k: round(statistics.median(i for i, _ in v), 3) for k, v in ttft.items()},
                "late_ttft_s": {k: round(statistics.median(late for _, late in v), 3) for k, v in ttft.items()},
                "tokens_per_s": {k: {n: round(statistics.median(v[n]), 1) for n in runs} for k, v in tps.items()}})
    if "step" in models and "batch" in models:
        out["throughput_step_over_batch"] = {n: round(speed("step", n) / speed("batch", n), 3) for n in runs}
    for p in paths[1:]:
        out[f"throughput_{p}_over_{paths[0]}"] = {n: round(speed(p, n) / speed(paths[0], n), 3) for n in runs}
    if "paged" in models:
        out["paged_routed"] = getattr(models["paged"].worker, "routed", None)  # every request here is greedy: all in the manager
    for m in models.values():
        m.close()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
