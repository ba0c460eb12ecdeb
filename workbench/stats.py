"""The intervals and tests the reports show, each named after the method it implements.

Every interval here is closed-form or a fixed number of Gaussian draws from a generator seeded by the data it
describes (``seed_for``), so a result never depends on which other systems share the frame, and its cost does
not grow with a bootstrap's resamples. ``benchmarks/coverage.py`` measures how often each covers the truth in
populations with known truth; tests/test_stats.py pins each definition against an independent formula.

- ``wilson``: a proportion (accuracy, agreement, a win rate): the Wilson score interval.
- ``paired_binary``: the difference of two systems' accuracies on the same items: Agresti & Min (2005), the
  Wald interval after adding 1/2 to each cell of the 2x2 table; with the exact McNemar test on the discordant
  items (``mcnemar_exact``, a binomial tail in constant time).
- ``mean_interval``: the mean of per-item numbers (Shapley values, Kendall's tau): Student's t interval.
- ``vs_best``: a system against the best of several members, chosen on the same items: an intersection-bounds
  interval (Chernozhukov, Lee & Rosen 2013) for ``system - max(members)``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054  #: the standard normal's 97.5 % quantile
VS_BEST_METHOD = ("intersection bounds (Chernozhukov, Lee & Rosen 2013): lower end the least of every member's "
                  "one-sided bound, upper end a simultaneous bound over the members that could be the best")


def _z(level: float) -> float:
    from statistics import NormalDist

    return Z95 if level == 0.95 else NormalDist().inv_cdf(0.5 + level / 2)


def seed_for(*keys: Any) -> int:
    """A seed that depends only on ``keys`` (e.g. the items and systems a comparison is over)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()[:8], "little")


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion k/n; (nan, nan) when n is 0.

    Exactly 0 at k = 0 and 1 at k = n (the closed form reaches them; rounding left them a step off, and the
    interval then excluded the observed rate), and always around k/n."""
    if n <= 0:
        return float("nan"), float("nan")
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k <= 0 else min(p, max(0.0, centre - half))
    hi = 1.0 if k >= n else max(p, min(1.0, centre + half))
    return lo, hi


def binomial_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), in constant time for any n (the regularised incomplete beta)."""
    from scipy.special import bdtr

    return float(bdtr(k, n, 0.5)) if k < n else 1.0


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar test on paired binary outcomes: the binomial test of ``wins`` against
    ``losses`` (the discordant pairs) with p = 1/2. 1.0 when there is no discordant pair."""
    n = wins + losses
    if n == 0:
        return 1.0
    return min(1.0, 2 * binomial_tail(min(wins, losses), n))


def paired_binary(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """``a`` against ``b``, right (1) or wrong (0) on the same items: the difference of accuracies, its
    Agresti-Min interval (1/2 added to each cell of the paired 2x2 table; never narrower than one item's worth
    at 0 discordant items), the discordant items (``wins``: a right, b wrong) and the exact McNemar p-value."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = len(a)
    if n == 0:
        return dict(n=0, diff=float("nan"), ci_low=float("nan"), ci_high=float("nan"), wins=0, losses=0,
                    mcnemar_p=1.0)
    wins, losses = int((a & ~b).sum()), int((~a & b).sum())
    diff = (wins - losses) / n
    bt, ct, nt = wins + 0.5, losses + 0.5, n + 2
    centre = (bt - ct) / nt
    half = _z(level) * math.sqrt(max(0.0, (bt + ct) - (bt - ct) ** 2 / nt)) / nt
    return dict(n=n, diff=diff, ci_low=min(diff, max(-1.0, centre - half)), ci_high=max(diff, min(1.0, centre + half)),
                wins=wins, losses=losses, mcnemar_p=mcnemar_exact(wins, losses))


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of per-item numbers; right/wrong values (0/1) get
    the Wilson interval instead. (nan, nan, nan) with no value; (mean, nan, nan) from one value, or from values
    that do not vary: a spread of zero over a few items would read as certainty, and it is only too few items."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if np.isin(v, (0.0, 1.0)).all():
        return (mean, *wilson(int(v.sum()), n, level))
    if n == 1 or float(v.std(ddof=1)) == 0.0:
        return mean, float("nan"), float("nan")
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def _agresti_min_moments(d_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and covariance of the mean per-item differences (n x J, each -1, 0 or 1) after Agresti & Min's
    adjustment: 1/2 added to each cell of every paired table, i.e. two pseudo-items (one with every difference +1
    and one with every difference -1, weight 1/2 each, and one of 0, weight 1). For one member this is exactly
    ``paired_binary``'s interval; it keeps a difference seen on no discordant item from getting a zero width."""
    n, width = d_items.shape
    total = n + 2
    centre = d_items.sum(axis=0) / total
    second = (d_items.T @ d_items + np.ones((width, width))) / total  # the pseudo-items add 1/2 + 1/2 to each
    return centre, (second - np.outer(centre, centre)) / total


def vs_best(system: np.ndarray, members: np.ndarray, level: float = 0.95, seed: int = 0,
            draws: int = 20000) -> dict[str, Any]:
    """``system`` (n items, right = 1) against the best of ``members`` (n items x J members) on the same items.

    The quantity is theta = acc(system) - max_j acc(member j) = min_j d_j, with d_j = acc(system) - acc(j).
    Its plain estimate, the least observed d_j, is biased towards the member (the best member is chosen on the
    items it is compared on: the winner's curse), and re-selecting the best inside bootstrap resamples biases
    the interval again (that method covered a true difference of 0 about 75 % of the time). This is the
    intersection-bounds interval (Chernozhukov, Lee & Rosen 2013) with moment selection (Andrews & Soares 2010):

    - lower end: the least of the members' one-sided bounds d_j - z se_j. theta is below it only if the truly best
      member's own bound missed (at most (1 - level) / 2), whichever member that is.
    - upper end: min d_j minus the (1 - level) / 2 quantile of min_j Z_j, Z ~ N(0, the d_j's covariance), over
      the members that could be the best (d_j - min d <= sqrt(log n) se_j): a simultaneous bound, so picking
      the best among several close members does not flatter it.

    d_j and its covariance are taken after Agresti & Min's 1/2 per cell (``_agresti_min_moments``), as
    ``paired_binary`` does, so that few items never give a zero-width interval.

    Coverage is at least nominal wherever the best member is identifiable and above it (up to about 98 %) where
    several members are tied, the price of never under-covering between those cases (benchmarks/coverage.py).
    Returns ``diff`` (theta-hat, the observed difference against the member that scored best here), ``best``
    (its index; ties: the first), ``ci_low``/``ci_high``, ``near_best`` (the members the upper end is over)."""
    f = np.asarray(system, dtype=float)
    m = np.asarray(members, dtype=float).reshape(len(f), -1)
    n, n_members = m.shape
    if n == 0 or n_members == 0:
        return dict(n=n, diff=float("nan"), best=None, ci_low=float("nan"), ci_high=float("nan"), near_best=[])
    d_items = f[:, None] - m
    d = d_items.mean(axis=0)
    best = int(np.argmin(d))  # the member with the highest accuracy; ties: the first
    theta = float(d[best])
    if n == 1:
        return dict(n=1, diff=theta, best=best, ci_low=-1.0, ci_high=1.0, near_best=list(range(n_members)))
    centre, cov = _agresti_min_moments(d_items)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    z = _z(level)
    low = float(np.min(centre - z * se))
    near = np.flatnonzero(centre - float(centre[best]) <= math.sqrt(math.log(n)) * se + 1e-12)
    near = np.union1d(near, [best]).astype(int)
    sub = cov[np.ix_(near, near)]
    if np.allclose(sub, 0):
        q = 0.0
    else:
        rng = np.random.default_rng(seed)
        draws_ = rng.multivariate_normal(np.zeros(len(near)), sub, size=draws, method="eigh", check_valid="ignore")
        q = float(np.quantile(draws_.min(axis=1), (1 - level) / 2))
    high = float(centre[near].min()) - q
    return dict(n=n, diff=theta, best=best, ci_low=max(-1.0, min(theta, low)), ci_high=min(1.0, max(theta, high)),
                near_best=[int(j) for j in near])


def interval_reading(lo: float, hi: float, p: float | None = None, n: int | None = None) -> str:
    """What a 95% interval of a paired difference says, in words.

    With few items an interval can exclude 0 when every item points one way, so an interval that excludes 0 counts
    as evidence only when the exact McNemar test agrees (``p`` < 0.05, where given) and there are at least 10 items
    (``n``, where given).
    """
    if lo != lo or hi != hi:
        return "no interval: nothing was compared"
    if lo > 0 or hi < 0:
        way = "gain" if lo > 0 else "loss"
        if p is not None and p >= 0.05:
            return (f"the 95% CI excludes 0 but the exact McNemar test does not (p = {p:.2f}): too few items "
                    f"disagree to call it a {way}")
        if n is not None and n < 10:
            return f"the 95% CI excludes 0, but over only {n} items: a hint of a {way}, not evidence"
        return f"the 95% CI excludes 0: evidence of a {way} on items like these"
    if n is not None and n < 10:
        return f"the 95% CI includes 0: over only {n} items, too few to tell either way"
    return "the 95% CI includes 0: no evidence either way (the difference could be noise)"
