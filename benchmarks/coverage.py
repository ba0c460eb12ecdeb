"""How often each interval the reports show covers the truth, in simulated populations whose truth is known.

    .venv/bin/python benchmarks/coverage.py              # 1000 simulated evaluations per cell (a few minutes)
    .venv/bin/python benchmarks/coverage.py --sims 200   # quicker, noisier (+-3 points at 95 %)

Each row: an interval, a population, a number of items, and the share of simulated evaluations whose 95 % interval
held the true value, for the method the workbench uses now (``workbench.stats``) and the one it used before
(percentile bootstraps, commit a9644ae), side by side with the nominal 0.95. Populations:

- equal: 6 members and the fused system, each right with probability 0.6, independently (true difference 0);
- clear: one member clearly best (0.80; the others 0.45-0.60), fused 0.75;
- close: members 0.62, 0.60, 0.60, 0.58, 0.57, 0.55, fused 0.63;
- correlated: items differ in difficulty (a shared latent per item), members and fused system all depend on it;
- correlated-equal: as correlated, every system equally good.

tests/test_coverage.py runs a small version of the same study with a tolerance that the old method fails.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench import stats  # noqa: E402

NOMINAL = 0.95
PHI = NormalDist().cdf


# --- populations ------------------------------------------------------------------------------------------------

def population(name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(fused right?, members right? (n x 6), true fused accuracy, true accuracy of the best member)."""
    if name in ("equal", "clear", "close"):
        p = {"equal": [0.6] * 6, "clear": [0.8, 0.6, 0.55, 0.5, 0.5, 0.45],
             "close": [0.62, 0.6, 0.6, 0.58, 0.57, 0.55]}[name]
        pf = {"equal": 0.6, "clear": 0.75, "close": 0.63}[name]
        members = rng.random((n, 6)) < np.array(p)
        return rng.random(n) < pf, members, pf, max(p)
    a = np.array([0.3, 0.25, 0.2, 0.2, 0.1, 0.0]) if name == "correlated" else np.zeros(6)
    af, s = (0.35, 1.0) if name == "correlated" else (0.0, 1.5)
    z = rng.normal(size=(n, 1))
    members = a + s * z + rng.normal(size=(n, 6)) > 0
    fused = af + s * z[:, 0] + rng.normal(size=n) > 0
    sd = math.sqrt(1 + s * s)
    return fused, members, PHI(af / sd), PHI(float(a.max()) / sd)


POPULATIONS = ("equal", "clear", "close", "correlated", "correlated-equal")


# --- the methods used before (a9644ae), written out here --------------------------------------------------------

def percentile_mean(values: np.ndarray, rng: np.random.Generator, n_boot: int = 2000) -> tuple[float, float]:
    boot = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(lo), float(hi)


def reselected_best(f: np.ndarray, m: np.ndarray, rng: np.random.Generator, n_boot: int = 2000) -> tuple[float, float]:
    idx = rng.integers(0, len(f), size=(n_boot, len(f)))
    boot = f[idx].mean(axis=1) - m[idx].mean(axis=1).max(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(lo), float(hi)


# --- Shapley values of a 3-member vote, with their exact population values ---------------------------------------

KEYS = ("R", "W1", "W2")  # the right answer and two wrong ones (so wrong answers can outvote a right one)
SHAPLEY_P = (0.55, 0.5, 0.4)  # each member right with this probability, else one of the wrong answers at random


def vote_value(pattern: tuple[str, ...], subset: tuple[int, ...]) -> float:
    answers = [pattern[i] for i in subset]
    if not answers:
        return 0.0
    top = max(answers.count(a) for a in answers)
    return float(next(a for a in answers if answers.count(a) == top) == "R")  # ties: first in pool order


def shapley_of(pattern: tuple[str, ...]) -> np.ndarray:
    from workbench.experiments.attribution import shapley

    values = {s: vote_value(pattern, s) for k in range(4) for s in itertools.combinations(range(3), k)}
    return np.array(shapley(values, 3)[0])


PATTERNS = list(itertools.product(KEYS, repeat=3))
PATTERN_PHI = np.array([shapley_of(p) for p in PATTERNS])
PATTERN_P = np.array([np.prod([(q if a == "R" else (1 - q) / 2) for a, q in zip(p, SHAPLEY_P)]) for p in PATTERNS])
TRUE_SHAPLEY = PATTERN_P @ PATTERN_PHI  # the population's Shapley values, exactly


# --- the study -----------------------------------------------------------------------------------------------------

def coverage(interval: str, pop: str, n: int, sims: int, seed: int = 0) -> dict[str, float]:
    """Coverage of one interval in one population at n items: {"now": ..., "before": ...}."""
    rng = np.random.default_rng([seed, n, POPULATIONS.index(pop) if pop in POPULATIONS else 9, len(interval)])
    hits = {"now": 0, "before": 0}
    for k in range(sims):
        if interval == "shapley":
            draws = rng.choice(len(PATTERNS), size=n, p=PATTERN_P)
            phi = PATTERN_PHI[draws][:, 0]  # the first member's per-item values
            truth = TRUE_SHAPLEY[0]
            now, before = stats.mean_interval(phi)[1:], percentile_mean(phi, rng)
        else:
            f, m, pf, pbest = population(pop, n, rng)
            f, m = f.astype(float), m.astype(float)
            if interval == "accuracy":  # the fused system's accuracy
                truth = pf
                now, before = stats.wilson(int(f.sum()), n), percentile_mean(f, rng)
            elif interval == "paired difference":  # fused vs member 2 (a fixed, named member)
                truth = pf - {"equal": 0.6, "clear": 0.6, "close": 0.6}.get(pop, np.nan)
                if truth != truth:
                    continue
                r = stats.paired_binary(f, m[:, 1])
                now, before = (r["ci_low"], r["ci_high"]), percentile_mean(f - m[:, 1], rng)
            elif interval == "fused vs best":
                truth = pf - pbest
                r = stats.vs_best(f, m, seed=stats.seed_for(n, k))
                now, before = (r["ci_low"], r["ci_high"]), reselected_best(f, m, rng)
            else:
                raise ValueError(interval)
        for key, (lo, hi) in (("now", now), ("before", before)):
            hits[key] += lo - 1e-12 <= truth <= hi + 1e-12
    return {k: v / sims for k, v in hits.items()}


STUDY = [("fused vs best", POPULATIONS), ("accuracy", ("equal", "clear")), ("paired difference", ("equal", "close")),
         ("agreement (Wilson)", ("agree-0.9",)), ("shapley", ("vote of 3",))]


def agreement_coverage(n: int, sims: int, q: float = 0.9, seed: int = 0) -> dict[str, float]:
    """A judge that agrees with the human with probability q: the Wilson interval of the agreement rate."""
    rng = np.random.default_rng([seed, n, 77])
    hits = {"now": 0, "before": 0}
    for _ in range(sims):
        agree = (rng.random(n) < q).astype(float)
        lo, hi = stats.wilson(int(agree.sum()), n)
        hits["now"] += lo <= q <= hi
        blo, bhi = percentile_mean(agree, rng)
        hits["before"] += blo <= q <= bhi
    return {k: v / sims for k, v in hits.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--sizes", default="20,50,100,500")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"coverage of 95% intervals, {args.sims} simulated evaluations per cell (nominal {NOMINAL})")
    print(f"{'interval':20} {'population':18} {'items':>5}  {'now':>6}  {'before':>6}")
    for interval, pops in STUDY:
        for pop in pops:
            for n in sizes:
                c = (agreement_coverage(n, args.sims) if interval.startswith("agreement")
                     else coverage(interval, pop, n, args.sims))
                print(f"{interval:20} {pop:18} {n:5d}  {c['now']:6.3f}  {c['before']:6.3f}", flush=True)


if __name__ == "__main__":
    main()
