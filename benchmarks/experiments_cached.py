"""The research instruments on cached member answers vs regenerating them, side by side in one run.

    .venv/bin/python benchmarks/experiments_cached.py [--items 8]

Scripted HTTP members (0.3 s before their answer) and scripted judges, in their own process. For each instrument:
its time on an evaluation's cached answers, the time to regenerate what it reads (a fresh evaluation with the modes
it needs, i.e. every member answer again, plus the instrument), their ratio, and the judge calls it made. The
cost-matched ablation is timed a second time on the same store (its three arms cached) against its first run.
``image_ablation`` and ``quantization_panel`` generate by design (new prompts, new models) and are not listed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import workbench as wb  # noqa: E402
from workbench import experiments as X  # noqa: E402
from workbench.eval.datasets import Dataset, Item  # noqa: E402
from workbench.specs import load_registry  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wb-exp-bench-"))
    srv = subprocess.Popen([sys.executable, "-m", "workbench.testing.scripted_server"], stdout=subprocess.PIPE, text=True)
    try:
        base = srv.stdout.readline().strip()
        table = lambda k: "~~".join(f"Q{i}=>Final answer: {k(i)}" for i in range(args.items))  # noqa: E731
        models = {"right": table(lambda i: 5), "wrong": table(lambda i: 4 if i % 2 else 5),
                  "other": table(lambda i: 6 if i % 3 else 5)}
        toml = "".join(f'[models.{n}]\nbackend="openai"\nmodel="table={t};delay=0.3"\nbase_url="{base}"\n'
                       for n, t in models.items())
        toml += f'[models.judge]\nbackend="openai"\nmodel="judge_pick=5;delay=0.05"\nbase_url="{base}"\n'
        toml += f'[models.analyst]\nbackend="openai"\nmodel="analysis=1;delay=0.05"\nbase_url="{base}"\n'
        (tmp / "models.toml").write_text(toml)
        reg = load_registry(tmp / "models.toml")
        ds = Dataset("bench", [Item(f"q{i}", f"Q{i}: what is 2+3?", "5", "numeric") for i in range(args.items)])
        pool = ["right", "wrong", "other"]
        needs = {"debate_vs_vote": ["debate", "vote"], "agreement_gate": ["best-of"], "member_attribution": ["vote"],
                 "judge_bias_sweep": ["vote"], "grounding": ["vote"]}
        run = {"debate_vs_vote": lambda df: X.debate_vs_vote(df),
               "agreement_gate": lambda df: X.agreement_gate(df),
               "member_attribution": lambda df: X.member_attribution(df),
               "member_attribution (judged)": lambda df: X.member_attribution(df, "judge", ds, reg),
               "judge_bias_sweep": lambda df: X.judge_bias_sweep(df, "judge", ds, registry=reg),
               "grounding": lambda df: X.grounding(df, "analyst", ds, registry=reg)}
        store = wb.RunStore(tmp / "cached.sqlite")
        df = wb.evaluate(ds, pool, "judge", ["vote", "best-of", "debate"], registry=reg, store=store, progress=False,
                         rounds=2)
        print(f"{'instrument':<30} {'cached':>9} {'regenerate':>11} {'ratio':>8} {'judge calls':>12}")
        for name, fn in run.items():
            t = time.perf_counter()
            e = fn(df)
            cached = time.perf_counter() - t
            modes = needs[name.split(" ")[0]]
            t = time.perf_counter()  # a fresh store: every member answer generated again, then the instrument
            fresh = wb.evaluate(ds, pool, "judge", modes, registry=reg, store=wb.RunStore(tmp / f"{time.time()}.sqlite"),
                                progress=False, rounds=2)
            fn(fresh)
            regen = time.perf_counter() - t
            print(f"{name:<30} {cached:8.3f}s {regen:10.2f}s {cached / regen:8.4f} {e.judge_calls:>12}")
        # cost-matched ablation: its three arms cached (a second run on the same store) vs generated (a fresh store)
        t = time.perf_counter()
        X.cost_matched_ablation(ds, pool, "judge", registry=reg, store=store)  # generates the sampled arms
        first = time.perf_counter() - t
        t = time.perf_counter()
        e = X.cost_matched_ablation(ds, pool, "judge", registry=reg, store=store)
        cached = time.perf_counter() - t
        print(f"{'cost_matched_ablation':<30} {cached:8.3f}s {first:10.2f}s {cached / first:8.4f} "
              f"{'(3 arms)':>12}")
        print(json.dumps({"items": args.items, "members": len(pool), "member_delay_s": 0.3}))
    finally:
        srv.terminate()


if __name__ == "__main__":
    main()
