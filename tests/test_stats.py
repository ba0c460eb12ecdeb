"""Each interval and test in workbench.stats against its definition, written here independently (property tests:
hypothesis draws the counts and outcomes)."""

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import stats

Z = NormalDist().inv_cdf(0.975)
outcomes = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300)


def binomial_cdf_log_space(k: int, n: int) -> float:
    """P(X <= k), X ~ Binomial(n, 1/2): the sum of C(n, i) / 2^n, each term in log space (lgamma)."""
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(x - top) for x in logs))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_is_twice_the_smaller_binomial_tail(wins, losses):
    n = wins + losses
    expected = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2 ** n)
    assert stats.mcnemar_exact(wins, losses) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_at_tens_of_thousands_of_discordant_pairs():
    """What took 86 s with exact integer sums: the same tail, from the incomplete beta, against log space."""
    for wins, losses in ((3000, 3100), (10000, 10300), (10150, 10150), (9000, 11300)):
        n = wins + losses
        assert stats.mcnemar_exact(wins, losses) == pytest.approx(
            min(1.0, 2 * binomial_cdf_log_space(min(wins, losses), n)), rel=1e-9, abs=1e-300)
    assert stats.mcnemar_exact(8, 0) == 2 / 256 and stats.mcnemar_exact(3, 1) == 2 * (1 + 4) / 16


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_is_the_root_pair_of_its_quadratic(kn):
    k, n = kn
    lo, hi = stats.wilson(k, n)
    a, b, c = 1 + Z * Z / n, -(2 * k / n + Z * Z / n), (k / n) ** 2  # (k/n - p)^2 = z^2 p (1 - p) / n
    disc = math.sqrt(max(0.0, b * b - 4 * a * c))
    assert lo == pytest.approx((-b - disc) / (2 * a), abs=1e-12) and hi == pytest.approx((-b + disc) / (2 * a), abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)


@settings(max_examples=300, deadline=None)
@given(outcomes)
def test_paired_binary_is_agresti_min(pairs):
    """Agresti & Min (2005): add 1/2 to each of the four cells of the paired table, then the Wald interval."""
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    n = len(pairs)
    cells = {(x, y): sum(1 for p in pairs if p == (x, y)) + 0.5 for x in (True, False) for y in (True, False)}
    nt = n + 2
    p12, p21 = cells[(True, False)] / nt, cells[(False, True)] / nt
    centre = p12 - p21
    half = Z * math.sqrt(max(0.0, (p12 + p21 - centre ** 2) / nt))
    r = stats.paired_binary(a, b)
    diff = (cells[(True, False)] - cells[(False, True)]) / n
    assert r["diff"] == pytest.approx(diff)
    assert r["wins"] == cells[(True, False)] - 0.5 and r["losses"] == cells[(False, True)] - 0.5
    assert r["ci_low"] == pytest.approx(min(diff, max(-1.0, centre - half)))
    assert r["ci_high"] == pytest.approx(max(diff, min(1.0, centre + half)))
    assert -1 <= r["ci_low"] <= r["diff"] <= r["ci_high"] <= 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False).map(lambda x: round(x, 6)), min_size=2, max_size=200))
def test_mean_interval_is_students_t_or_wilson_for_right_and_wrong(values):
    from scipy.stats import t

    v = np.array(values)
    mean, lo, hi = stats.mean_interval(v)
    assert mean == pytest.approx(v.mean())
    if np.isin(v, (0.0, 1.0)).all():
        assert (lo, hi) == stats.wilson(int(v.sum()), len(v))
    elif v.std(ddof=1) == 0:  # no spread over a few items is not certainty: no interval
        assert math.isnan(lo) and math.isnan(hi)
    else:
        elo, ehi = t.interval(0.95, len(v) - 1, loc=v.mean(), scale=v.std(ddof=1) / math.sqrt(len(v)))
        assert lo == pytest.approx(elo, abs=1e-9) and hi == pytest.approx(ehi, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 120).flatmap(lambda n: st.tuples(
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=1, max_size=5))))
def test_vs_best_definition(data):
    f_list, m_lists = data
    f, m = np.array(f_list, dtype=float), np.array(m_lists, dtype=float).T
    n = len(f)
    r = stats.vs_best(f, m, seed=1)
    acc = m.mean(axis=0)
    assert r["diff"] == pytest.approx(f.mean() - acc.max()) and r["best"] == int(np.argmax(acc))
    d = f[:, None] - m
    # Agresti-Min per member: 1/2 added to each cell of its paired table (n + 2 items, centre (b - c) / (n + 2))
    b, c = (d > 0).sum(axis=0) + 0.5, (d < 0).sum(axis=0) + 0.5
    centre = (b - c) / (n + 2)
    se = np.sqrt((b + c - (b - c) ** 2 / (n + 2)) / (n + 2) ** 2)
    # the lower end: the least one-sided bound over every member (theta is below it only if the best one missed)
    assert r["ci_low"] == pytest.approx(max(-1.0, min(r["diff"], float(np.min(centre - Z * se)))))
    assert -1 <= r["ci_low"] <= r["diff"] <= r["ci_high"] <= 1
    assert r["best"] in r["near_best"]
    # the upper end: over the near-best members, never below the single best member's own bound less simulation
    # error (a simultaneous bound is at least as wide as one of its members')
    j = r["best"]
    assert r["ci_high"] >= min(1.0, max(r["diff"], centre[j] + Z * se[j])) - 0.05 * se[j] - 1e-9


def test_vs_best_with_one_member_is_the_agresti_min_interval():
    rng = np.random.default_rng(3)
    f, m = rng.random(200) < 0.6, rng.random(200) < 0.5
    r, am = stats.vs_best(f, m[:, None], seed=7), stats.paired_binary(f, m)
    assert r["ci_low"] == pytest.approx(am["ci_low"]) and r["ci_high"] == pytest.approx(am["ci_high"], rel=0.02)


def test_vs_best_never_gives_a_zero_width_interval_on_few_items():
    """Fused and member both right on all 4 items: the difference is 0 here, but 4 items cannot pin it to 0."""
    r = stats.vs_best(np.ones(4), np.ones((4, 2)))
    assert r["diff"] == 0.0 and r["ci_low"] < -0.2 and r["ci_high"] > 0.2


def test_seed_for_depends_only_on_its_keys():
    assert stats.seed_for("fusion:vote", "member:a", "q1") == stats.seed_for("fusion:vote", "member:a", "q1")
    assert stats.seed_for("fusion:vote", "member:a", "q1") != stats.seed_for("fusion:vote", "member:a", "q2")
