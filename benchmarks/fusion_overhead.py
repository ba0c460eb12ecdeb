"""Fusion figures, measured side by side in one run.

    .venv/bin/python benchmarks/fusion_overhead.py [--reps 5]

1. Pool-phase overhead: wall time of fan_out over 2, 4 and 8 scripted HTTP members on 127.0.0.1 with
   different latencies, divided by the slowest member's own latency in the same run (goal: <= 1.05).
2. Shared-model batching: 4 members on one local tiny Llama 4 as one batched generate call vs 4 separate calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import workbench as wb  # noqa: E402
from workbench.fusion.fanout import fan_out, load_members  # noqa: E402
from workbench.testing import ScriptedServer  # noqa: E402
from workbench.specs import Member, ModelSpec  # noqa: E402
from workbench.types import GenerateConfig  # noqa: E402


async def pool_overhead(srv: ScriptedServer, n: int, reps: int) -> tuple[float, float, float]:
    members = [Member(ModelSpec(name=f"m{i}", backend="openai", base_url=srv.base_url,
                                model=f"reply=answer {i} with a few words;delay={0.2 + 0.1 * i:.2f};chunk_delay=0.01"))
               for i in range(n)]
    backends = await load_members(members)
    prompt = wb.Prompt("What is 2+3?")
    await fan_out(members, backends, lambda i: prompt.messages(), GenerateConfig())  # warm connections
    ratios, walls = [], []
    for _ in range(reps):
        t = time.perf_counter()
        outs = await fan_out(members, backends, lambda i: prompt.messages(), GenerateConfig())
        wall = time.perf_counter() - t
        assert all(o.ok for o in outs)
        slowest = max(o.latency_s for o in outs)
        ratios.append(wall / slowest)
        walls.append(wall)
    return statistics.median(ratios), max(ratios), statistics.median(walls)


async def shared_batching(reps: int, tokens: int) -> tuple[float, float]:
    model = wb.load_model("tiny-offline")
    personas = ["You are an analyst.", "You are a skeptic.", "Be concise.", "Think laterally."]
    members = [Member(model.spec, persona=p, display_name=f"tiny{i}") for i, p in enumerate(personas)]
    backends = [model] * 4
    prompt = wb.Prompt("What is two plus three?")
    cfg = GenerateConfig(max_new_tokens=tokens, min_new_tokens=tokens, temperature=0.7)
    await fan_out(members, backends, lambda i: prompt.messages(members[i].persona), cfg)  # warm-up
    sep, bat = [], []
    for _ in range(reps):
        t = time.perf_counter()
        for i in range(4):
            await fan_out(members[i:i + 1], backends[:1], lambda _j, i=i: prompt.messages(members[i].persona), cfg)
        sep.append(time.perf_counter() - t)
        before = model.worker.batches_run
        t = time.perf_counter()
        await fan_out(members, backends, lambda i: prompt.messages(members[i].persona), cfg)
        bat.append(time.perf_counter() - t)
        assert model.worker.batches_run == before + 1, "the 4 members were not batched into one call"
    return statistics.median(sep), statistics.median(bat)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    print("pool-phase overhead (fan_out wall / slowest member's latency, same run):")
    with ScriptedServer() as srv:
        for n in (2, 4, 8):
            med, worst, wall = await pool_overhead(srv, n, args.reps)
            scripted = 0.2 + 0.1 * (n - 1) + 0.01 * 6
            print(f"  {n} members: median {med:.3f}, worst {worst:.3f} (wall {wall * 1000:.0f} ms; slowest member "
                  f"scripted at {scripted * 1000:.0f} ms)")
    sep, bat = await shared_batching(args.reps, args.tokens)
    print(f"4 members on one tiny model, {args.tokens} tokens each: 4 separate calls {sep * 1000:.0f} ms, "
          f"one batched call {bat * 1000:.0f} ms, speed-up {sep / bat:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
