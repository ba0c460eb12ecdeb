"""Harness throughput on the tiny preset, uncached vs cached member answers, side by side in one run.

    .venv/bin/python benchmarks/eval_throughput.py [--items 6]

uncached: a fresh store, so every member answer is generated, then judged (best-of).
cached:   the same pool, items and mode again as a new evaluation: member answers come from the cache, the
          judge (if any) runs again. Items per minute for both, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import workbench as wb  # noqa: E402
from workbench.eval.harness import evaluate_async  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=48)
    args = ap.parse_args()
    pool = ["tiny-offline", "tiny-offline:skeptic", "tiny-offline:analyst"]
    wb.load_model("tiny-offline", keep=True)  # load once, outside the timings
    for mode, label in (("vote", "members only (vote, no judge)"), ("best-of", "members + judge (best-of)")):
        judge = None if mode == "vote" else "tiny-offline"
        store = wb.RunStore(Path(tempfile.mkdtemp()) / "runs.sqlite")
        timings = []
        # The second pass differs only in `rounds` (used by debate alone): a new evaluation over the same
        # cached member answers, doing the same judge work again.
        for rounds in (2, 3):
            t = time.perf_counter()
            await evaluate_async("builtin:arithmetic", pool, judge, [mode], limit=args.items, rounds=rounds,
                                 max_new_tokens=args.tokens, store=store, progress=False)
            timings.append(time.perf_counter() - t)
        uncached, cached = timings
        print(f"{label}: uncached {args.items / uncached * 60:.1f} items/min, cached members "
              f"{args.items / cached * 60:.1f} items/min, speed-up {uncached / cached:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
