import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import stats

from fer_fairness.stats import (
    least_power,
    minimum_detectable_difference,
    power_two_proportions,
    required_sample_size,
)

from ._strategies import FEW, PROPERTY


def hand_power(p1, p0, n1, n0, alpha) -> float:
    """Two-sided pooled z-test power: pooled variance under H0, unpooled under H1."""
    pooled = (n1 * p1 + n0 * p0) / (n1 + n0)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    z = stats.norm.isf(alpha / 2)
    d = p1 - p0
    return stats.norm.sf((z * se0 - d) / se1) + stats.norm.cdf((-z * se0 - d) / se1)


def simulated_rejection_rate(p1, p0, n1, n0, alpha, n_sims, rng) -> float:
    x1 = rng.binomial(n1, p1, n_sims)
    x0 = rng.binomial(n0, p0, n_sims)
    pooled = (x1 + x0) / (n1 + n0)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (x1 / n1 - x0 / n0) / se, 0.0)
    return float(np.mean(2 * stats.norm.sf(np.abs(z)) < alpha))


@PROPERTY
@given(
    p1=st.floats(0.02, 0.98),
    p0=st.floats(0.02, 0.98),
    n1=st.integers(5, 2000),
    n0=st.integers(5, 2000),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_power_matches_hand_formula(p1, p0, n1, n0, alpha):
    expected = hand_power(p1, p0, n1, n0, alpha)
    assert power_two_proportions(p1=p1, p0=p0, n1=n1, n0=n0, alpha=alpha) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("p1", "p0", "n1", "n0"),
    [(0.3, 0.2, 200, 200), (0.75, 0.6, 120, 300), (0.5, 0.5, 150, 100), (0.15, 0.3, 80, 90)],
)
def test_power_matches_simulated_z_test_rejection_rate(p1, p0, n1, n0):
    rng = np.random.default_rng(1234)
    n_sims = 20_000
    simulated = simulated_rejection_rate(p1, p0, n1, n0, 0.05, n_sims, rng)
    predicted = power_two_proportions(p1=p1, p0=p0, n1=n1, n0=n0, alpha=0.05)
    # 4 Monte Carlo standard errors, plus 0.02 for the normal approximation of a discrete test.
    assert abs(simulated - predicted) < 4 * math.sqrt(0.25 / n_sims) + 0.02


@PROPERTY
@given(
    alternatives=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3),
    p0=st.floats(0.0, 1.0),
    n1=st.one_of(st.just(0.0), st.floats(0.5, 2000.0)),  # effective counts are real
    n0=st.one_of(st.just(0.0), st.floats(0.5, 2000.0)),
    alpha=st.sampled_from([0.001, 0.05]),
)
def test_least_power_is_the_smallest_power_of_its_alternatives_exactly(alternatives, p0, n1, n0, alpha):
    # One array call must give each alternative the number a call of its own gives, to the bit:
    # records are compared exactly before and after.
    expected = min(power_two_proportions(p1=p, p0=p0, n1=n1, n0=n0, alpha=alpha) for p in alternatives)
    got = least_power(alternatives=tuple(alternatives), p0=p0, n1=n1, n0=n0, alpha=alpha)
    assert got == expected or (math.isnan(got) and math.isnan(expected))


def test_least_power_matches_the_hand_formula_at_the_weaker_edge():
    edges = (0.25, 0.15)
    expected = min(hand_power(p, 0.2, 300, 250, 0.01) for p in edges)
    assert least_power(alternatives=edges, p0=0.2, n1=300, n0=250, alpha=0.01) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="alternatives must name at least one rate"):
        least_power(alternatives=(), p0=0.2, n1=300, n0=250, alpha=0.01)


def test_power_edge_cases():
    assert power_two_proportions(p1=1.2, p0=0.5, n1=10, n0=10, alpha=0.05) == 0.0
    assert power_two_proportions(p1=0.6, p0=0.5, n1=0, n0=10, alpha=0.05) == 0.0
    assert power_two_proportions(p1=0.5, p0=0.5, n1=100, n0=100, alpha=0.05) == pytest.approx(0.05)
    assert power_two_proportions(p1=0.0, p0=0.0, n1=100, n0=100, alpha=0.05) == 0.0
    assert power_two_proportions(p1=1.0, p0=0.0, n1=100, n0=100, alpha=0.05) == 1.0


@PROPERTY
@given(
    p1=st.floats(0.01, 0.99),
    p0=st.floats(0.01, 0.99),
    ratio=st.sampled_from([0.25, 0.5, 1.0, 1.7, 3.0]),
    power=st.sampled_from([0.5, 0.8, 0.9]),
)
def test_required_sample_size_is_the_smallest_that_reaches_the_power(p1, p0, ratio, power):
    assume(abs(p1 - p0) > 1e-3)
    n0 = required_sample_size(p1=p1, p0=p0, ratio=ratio, alpha=0.05, power=power)
    assert n0 == int(n0) and n0 >= 1
    assert hand_power(p1, p0, ratio * n0, n0, 0.05) >= power - 1e-12
    if n0 > 1:
        assert hand_power(p1, p0, ratio * (n0 - 1), n0 - 1, 0.05) < power


def test_required_sample_size_matches_the_textbook_formula():
    # Fleiss, Levin & Paik (2003) eq. 4.14 without continuity correction, equal groups;
    # it ignores the far rejection tail, so it may exceed the exact answer by at most one.
    p1, p0 = 0.35, 0.25
    z_a, z_b = stats.norm.isf(0.025), stats.norm.isf(0.2)
    p_bar = (p1 + p0) / 2
    n = (z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p0 * (1 - p0))) ** 2 / (
        p1 - p0
    ) ** 2
    assert required_sample_size(p1=p1, p0=p0, ratio=1.0, alpha=0.05, power=0.8) in (
        math.ceil(n) - 1,
        math.ceil(n),
    )
    assert required_sample_size(p1=0.3, p0=0.3, ratio=1.0, alpha=0.05, power=0.8) == math.inf


@FEW
@given(
    p0=st.floats(0.0, 1.0),
    # With a handful of observations in a group the capped power curve wiggles between the
    # function's 100 grid points (all-one-outcome tables); "minimum detectable" means little there.
    n1=st.integers(10, 1000),
    n0=st.integers(10, 1000),
    power=st.sampled_from([0.5, 0.8]),
)
def test_minimum_detectable_difference_reaches_the_power_from_there_on(p0, n1, n0, power):
    d = minimum_detectable_difference(p0=p0, n1=n1, n0=n0, alpha=0.05, power=power)

    def power_at(p1):
        return power_two_proportions(p1=min(1.0, max(0.0, p1)), p0=p0, n1=n1, n0=n0, alpha=0.05)

    if d == math.inf:
        # No d from which every larger difference is detected: the curve's far ends (a rate of 1
        # upwards, 0 downwards) fall short. (It may still peak above the target in between, where
        # the approximation is capped by the chance of an all-one-outcome table.)
        assert power_at(1.0) < power or p0 == 1.0
        assert power_at(0.0) < power or p0 == 0.0
        return
    assert 0 < d <= 1
    up_reach, down_reach = 1 - p0, p0
    direction = 1 if d <= up_reach + 1e-12 and power_at(p0 + d) >= power - 1e-6 else -1
    reach = up_reach if direction == 1 else down_reach
    # Every larger difference in that direction also reaches the power; slightly less does not.
    assert all(power_at(p0 + direction * e) >= power - 1e-6 for e in np.linspace(d, reach, 25))
    assert power_at(p0 + direction * d * (1 - 1e-4)) < power + 1e-9
    if direction == -1:  # only fall back to a drop when a rise cannot reach the power
        assert power_at(1.0) < power or up_reach == 0


def test_power_is_not_overstated_near_a_zero_rate():
    # p0 = 0, n0 > n1: the raw normal approximation tends to ~0.51 as p1 -> 0; the z-test rejects
    # only when group 1 has a success, so the true power is about n1 * p1.
    assert power_two_proportions(p1=1e-9, p0=0.0, n1=1, n0=9, alpha=0.05) < 1e-6
    assert minimum_detectable_difference(p0=0.0, n1=1, n0=9, alpha=0.05, power=0.5) == pytest.approx(0.5)
    # |z| <= sqrt(n1 + n0): two observations can never be significant at 5%.
    assert power_two_proportions(p1=1.0, p0=0.0, n1=1, n0=1, alpha=0.05) == 0.0
    assert power_two_proportions(p1=1.0, p0=0.0, n1=2, n0=2, alpha=0.05) == 1.0


def test_minimum_detectable_difference_known_cases():
    d = minimum_detectable_difference(p0=0.2, n1=200, n0=200, alpha=0.05, power=0.8)
    assert hand_power(0.2 + d, 0.2, 200, 200, 0.05) == pytest.approx(0.8, abs=1e-6)
    # Near the ceiling only a drop can be detected.
    d = minimum_detectable_difference(p0=0.97, n1=100, n0=100, alpha=0.05, power=0.8)
    assert 0.03 < d < 0.97
    assert hand_power(0.97 - d, 0.97, 100, 100, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert minimum_detectable_difference(p0=0.5, n1=1, n0=1, alpha=0.05, power=0.9) == math.inf
