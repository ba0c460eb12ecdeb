"""Do processes that loaded a model exit cleanly? Counts non-zero exit statuses over many fresh processes.

Before the fix, a process that had generated with a local model aborted at exit in about one run of
three (SIGABRT, status 134: the model's worker thread was still freeing tensors when Python finalised,
and ``pthread_exit`` unwound through libtorch's C++ frames). ``--before`` runs the same script with a
model constructed outside the lifetime registry (never closed, worker never joined: the old path), side
by side with the real commands, so the difference is measured in one run.

    python benchmarks/clean_exit.py --runs 30            # CI: exits 1 if any run ends non-zero
    python benchmarks/clean_exit.py --runs 30 --before   # also the old path, for comparison
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import subprocess
import sys
import time

SCRIPT = """
import asyncio, workbench as wb
m = wb.load_model("tiny-offline")
r = asyncio.run(m.generate(wb.Prompt("hi"), max_new_tokens=4))
assert r.ok, r
print(r.text)
"""

# The old path: a backend nobody closes, its daemon worker still alive when the interpreter finalises.
SCRIPT_BEFORE = """
import asyncio, workbench as wb
from workbench.backends.local import LocalModel
from workbench.backends import spec_for
m = LocalModel(spec_for("tiny-offline"))
r = asyncio.run(m.generate(wb.Prompt("hi"), max_new_tokens=4))
assert r.ok, r
print(r.text)
"""


def commands(before: bool) -> dict[str, list[str]]:
    wb = [sys.executable, "-m", "workbench.cli"]
    cmds = {
        "workbench generate --model tiny-offline --max-new-tokens 4 --json hi":
            wb + ["generate", "--model", "tiny-offline", "--max-new-tokens", "4", "--json", "hi"],
        "script: load_model + asyncio.run(generate)": [sys.executable, "-c", SCRIPT],
    }
    if before:
        cmds["old path: LocalModel never closed (before the fix)"] = [sys.executable, "-c", SCRIPT_BEFORE]
    return cmds


def run_many(argv: list[str], runs: int, jobs: int) -> collections.Counter:
    def one(_: int) -> int:
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300).returncode

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return collections.Counter(pool.map(one, range(runs)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="fresh processes per command")
    ap.add_argument("--jobs", type=int, default=2, help="processes at once")
    ap.add_argument("--before", action="store_true", help="also run the old, unclosed path for comparison")
    args = ap.parse_args()
    # build the tiny checkpoint once, so the runs measure exits and not a first conversion
    subprocess.run([sys.executable, "-c", "from workbench.backends.tiny import ensure_tiny_llama4 as e; e()"],
                   check=True, env=os.environ)
    failed_after = 0
    print(f"{'command':<72} {'runs':>5} {'non-zero':>9}  statuses")
    for label, argv in commands(args.before).items():
        t0 = time.perf_counter()
        counts = run_many(argv, args.runs, args.jobs)
        bad = sum(n for rc, n in counts.items() if rc != 0)
        if not label.startswith("old path"):
            failed_after += bad
        statuses = ", ".join(f"{rc}: {n}" for rc, n in sorted(counts.items()))
        print(f"{label:<72} {args.runs:>5} {bad:>9}  {statuses}   ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"clean_exit: {failed_after} non-zero exits over the workbench's own commands")
    return 1 if failed_after else 0


if __name__ == "__main__":
    sys.exit(main())
