"""Backend figures on the CPU, measured side by side in one run (these machines are noisy).

    .venv/bin/python benchmarks/backends_cpu.py [--reps 5] [--tokens 32]

Prints: `import workbench` time; tiny Llama 4 generate time bf16 vs INT4 (ratio); 4 requests batched into
one generate call vs 4 sequential calls (ratio).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def import_time(reps: int) -> float:
    code = "import time; t=time.perf_counter(); import workbench; print(time.perf_counter()-t)"
    return statistics.median(float(subprocess.check_output([sys.executable, "-c", code])) for _ in range(reps))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    print(f"import workbench: {import_time(args.reps) * 1000:.0f} ms (median of {args.reps}, fresh interpreters)")

    import workbench as wb

    bf16, int4 = wb.load_model("tiny-offline"), wb.load_model("tiny-offline-int4")
    n = args.tokens
    settings = dict(max_new_tokens=n, min_new_tokens=n, temperature=0)
    prompt = wb.Prompt("What is two plus three? Explain.")
    for m in (bf16, int4):  # warm-up
        await m.generate(prompt, **settings)
    times = {"bf16": [], "int4": []}
    for _ in range(args.reps):  # alternate so drift hits both
        for label, m in (("bf16", bf16), ("int4", int4)):
            t = time.perf_counter()
            r = await m.generate(prompt, **settings)
            assert r.ok and r.usage.completion_tokens == n, r
            times[label].append(time.perf_counter() - t)
    b, q = statistics.median(times["bf16"]), statistics.median(times["int4"])
    print(f"tiny generate {n} tokens: bf16 {b * 1000:.1f} ms, INT4 {q * 1000:.1f} ms, INT4/bf16 = {q / b:.2f}x")
    mb, mq = bf16.memory_report()["total_bytes"], int4.memory_report()["total_bytes"]
    print(f"tiny weights: bf16 {mb / 1024:.0f} KiB, INT4 {mq / 1024:.0f} KiB, ratio {mq / mb:.2f}")

    prompts = [wb.Prompt(t) for t in ("What is 2+3?", "Name a colour.", "Count the circles.", "Say hello.")]
    seq, bat = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        for p in prompts:
            await bf16.generate(p, **settings)
        seq.append(time.perf_counter() - t)
        before = bf16.worker.batches_run
        t = time.perf_counter()
        await asyncio.gather(*[bf16.generate(p, **settings) for p in prompts])
        bat.append(time.perf_counter() - t)
        assert bf16.worker.batches_run == before + 1
    s, bt = statistics.median(seq), statistics.median(bat)
    print(f"4 requests x {n} tokens: sequential {s * 1000:.1f} ms, batched (one call) {bt * 1000:.1f} ms, "
          f"speed-up {s / bt:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
