"""Seconds for the metrics of a large evaluation (what the report and the Evaluate tab compute), on the code that
is importable: run it on this checkout and on an older one to compare them in one sitting.

    .venv/bin/python benchmarks/report_time.py                       # this checkout
    git worktree add /tmp/old a9644ae && WORKBENCH_CODE=/tmp/old .venv/bin/python benchmarks/report_time.py

The evaluation: ``--items`` items x (6 members, 4 fusion modes, the oracle), each right at random with a fixed
probability (0.45-0.62), so thousands of items disagree between a fusion mode and the best member.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.environ.get("WORKBENCH_CODE") or str(Path(__file__).resolve().parent.parent))

from workbench.eval import metrics  # noqa: E402


def frame(items: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    p = np.array([0.6, 0.58, 0.55, 0.5, 0.5, 0.45, 0.62, 0.6, 0.57, 0.59])
    right = rng.random((items, len(p))) < p
    names = [f"member:m{j}" for j in range(6)] + ["fusion:best-of", "fusion:merge", "fusion:debate", "fusion:vote"]
    ids = np.repeat([f"q{i}" for i in range(items)], len(names) + 1)
    systems = np.tile(names + ["oracle"], items)
    correct = np.column_stack([right, right[:, :6].any(axis=1)]).ravel()
    kinds = [s.split(":")[0] for s in systems]
    modes = [s.split(":")[1] if s.startswith("fusion:") else None for s in systems]
    return pd.DataFrame(dict(item_id=ids, system=systems, kind=kinds, mode=modes, correct=correct, latency_s=1.0,
                             tokens=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    items = ap.parse_args().items
    df = frame(items)
    start = time.perf_counter()
    s = metrics.summary(df)
    took = time.perf_counter() - start
    paired = s["paired"]
    disc = int((paired["wins"] + paired["losses"]).max()) if len(paired) else 0
    print(f"{metrics.__file__}: metrics.summary over {items} items x 11 systems: {took:.2f} s "
          f"(up to {disc} discordant items per comparison)")


if __name__ == "__main__":
    main()
