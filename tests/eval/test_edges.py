"""Definitions at the edges: intervals at k = 0 and k = n, and an evaluation with no item."""

import math
from statistics import NormalDist

import pandas as pd

from workbench.eval import metrics
from workbench.storage.labels import wilson


def wilson_by_roots(k: int, n: int, z: float = NormalDist().inv_cdf(0.975)) -> tuple[float, float]:
    """The Wilson interval as its definition states it: the p with (k/n - p)^2 = z^2 p (1 - p) / n (the two roots
    of a quadratic in p), written independently of workbench.storage.labels."""
    a = 1 + z * z / n
    b = -(2 * k / n + z * z / n)
    c = (k / n) ** 2
    disc = math.sqrt(max(0.0, b * b - 4 * a * c))
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_wilson_matches_its_definition_and_always_contains_the_observed_rate():
    for n in range(1, 301):
        for k in range(n + 1):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0, (k, n, lo, hi)
            rlo, rhi = wilson_by_roots(k, n)
            assert math.isclose(lo, rlo, abs_tol=1e-12) and math.isclose(hi, rhi, abs_tol=1e-12), (k, n)
        assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0  # exactly, not a rounding step away
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_an_evaluation_with_no_item_has_metrics_not_a_crash():
    """What the harness returns for an empty dataset or --limit 0."""
    empty = pd.DataFrame(columns=["item_id", "system", "kind", "mode", "correct", "latency_s", "tokens"])
    s = metrics.summary(empty)
    assert s["best_member"] is None and s["accuracy"].empty and "kind" in s["accuracy"].columns
