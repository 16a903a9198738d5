import math

import numpy as np
import pytest
from hypothesis import assume, given
from scipy import stats
from scipy.stats import norm
from statsmodels.stats.proportion import confint_proportions_2indep

from fer_fairness.stats import Interval, katz_ratio, newcombe_difference, wilson_interval

from ._strategies import PROPERTY, confidences, counts, interior_counts


def hand_wilson(x: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson 1927 score interval, written out."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def hand_newcombe(x1, n1, x0, n0, confidence) -> tuple[float, float]:
    """Newcombe 1998 method 10 from two hand-written Wilson intervals."""
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = hand_wilson(x1, n1, confidence)
    l0, u0 = hand_wilson(x0, n0, confidence)
    d = p1 - p0
    return d - math.hypot(p1 - l1, u0 - p0), d + math.hypot(u1 - p1, p0 - l0)


# --- Wilson -------------------------------------------------------------------------------------


@PROPERTY
@given(count=counts(min_n=1), confidence=confidences)
def test_wilson_matches_hand_formula(count, confidence):
    x, n = count
    interval = wilson_interval(successes=x, n=n, confidence=confidence)
    low, high = hand_wilson(x, n, confidence)
    assert interval.low == pytest.approx(max(low, 0.0), abs=1e-12)
    assert interval.high == pytest.approx(min(high, 1.0), abs=1e-12)


@PROPERTY
@given(count=counts(), confidence=confidences)
def test_wilson_stays_in_unit_range_and_contains_the_rate(count, confidence):
    x, n = count
    interval = wilson_interval(successes=x, n=n, confidence=confidence)
    assert 0.0 <= interval.low <= interval.high <= 1.0
    if n:
        assert interval.contains(x / n)


def test_wilson_edge_cases():
    assert wilson_interval(successes=0, n=0, confidence=0.95) == Interval(low=0.0, high=1.0)
    zero = wilson_interval(successes=0, n=1, confidence=0.95)
    one = wilson_interval(successes=1, n=1, confidence=0.95)
    z2 = stats.norm.ppf(0.975) ** 2
    assert zero.low == 0.0 and zero.high == pytest.approx(z2 / (1 + z2))  # closed form at x = 0
    assert one.high == 1.0 and one.low == pytest.approx(1 / (1 + z2))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"successes": 3, "n": 2, "confidence": 0.95},
        {"successes": -1, "n": 2, "confidence": 0.95},
        {"successes": 1, "n": 2, "confidence": 1.0},
        {"successes": math.nan, "n": 2, "confidence": 0.95},
        {"successes": 1, "n": math.inf, "confidence": 0.95},
    ],
)
def test_wilson_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        wilson_interval(**kwargs)


def test_effective_counts_give_the_hand_formula():
    # Clustered data enter as real-valued effective counts (Rao & Scott 1992): same formulas.
    low, high = hand_wilson(10.5, 40.25, 0.95)
    interval = wilson_interval(successes=10.5, n=40.25, confidence=0.95)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)
    result = newcombe_difference(x1=10.5, n1=40.25, x0=5.2, n0=41.7, confidence=0.95)
    assert (result.low, result.high) == pytest.approx(hand_newcombe(10.5, 40.25, 5.2, 41.7, 0.95), abs=1e-12)


# --- Newcombe difference ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "n1", "x0", "n0", "low", "high"),
    [  # Newcombe 1998, Statistics in Medicine 17:873, Table II, method 10
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_newcombe_reproduces_published_examples(x1, n1, x0, n0, low, high):
    result = newcombe_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=0.95)
    assert result.estimate == pytest.approx(x1 / n1 - x0 / n0)
    assert (round(result.low, 4), round(result.high, 4)) == (low, high)


@PROPERTY
@given(g1=counts(min_n=1), g0=counts(min_n=1), confidence=confidences)
def test_newcombe_matches_hand_formula(g1, g0, confidence):
    (x1, n1), (x0, n0) = g1, g0
    result = newcombe_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=confidence)
    low, high = hand_newcombe(x1, n1, x0, n0, confidence)
    assert result.estimate == pytest.approx(x1 / n1 - x0 / n0, abs=1e-12)
    assert result.low == pytest.approx(low, abs=1e-9)
    assert result.high == pytest.approx(high, abs=1e-9)


@PROPERTY
@given(g1=counts(), g0=counts(), confidence=confidences)
def test_newcombe_range_containment_and_group_swap(g1, g0, confidence):
    (x1, n1), (x0, n0) = g1, g0
    forward = newcombe_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=confidence)
    backward = newcombe_difference(x1=x0, n1=n0, x0=x1, n0=n1, confidence=confidence)
    assert -1.0 <= forward.low <= forward.high <= 1.0
    if n1 and n0:
        assert forward.low <= forward.estimate <= forward.high
        assert backward.estimate == pytest.approx(-forward.estimate, abs=1e-12)
    else:
        assert math.isnan(forward.estimate) and (forward.low, forward.high) == (-1.0, 1.0)
    assert backward.low == pytest.approx(-forward.high, abs=1e-12)
    assert backward.high == pytest.approx(-forward.low, abs=1e-12)


# --- Katz ratio ---------------------------------------------------------------------------------


def test_katz_known_answer_uses_rates_not_counts():
    # Anger read as Disgust: 27 of 76 Black faces vs 12 of 55 White faces.
    result = katz_ratio(x1=27, n1=76, x0=12, n0=55, confidence=0.95)
    assert round(result.estimate, 3) == 1.628
    assert result.estimate != pytest.approx(27 / 12)  # the count ratio 2.25 is not the estimate
    assert not result.zero_corrected
    se = math.sqrt(1 / 27 - 1 / 76 + 1 / 12 - 1 / 55)
    z = stats.norm.ppf(0.975)
    assert result.low == pytest.approx(result.estimate * math.exp(-z * se))
    assert result.high == pytest.approx(result.estimate * math.exp(z * se))


@PROPERTY
@given(g1=interior_counts(), g0=interior_counts(), confidence=confidences)
def test_katz_matches_statsmodels_for_nonzero_cells(g1, g0, confidence):
    (x1, n1), (x0, n0) = g1, g0
    result = katz_ratio(x1=x1, n1=n1, x0=x0, n0=n0, confidence=confidence)
    low, high = confint_proportions_2indep(x1, n1, x0, n0, method="log", compare="ratio", alpha=1 - confidence)
    assert result.estimate == pytest.approx((x1 / n1) / (x0 / n0), rel=1e-12)
    assert result.low == pytest.approx(low, rel=1e-9)
    assert result.high == pytest.approx(high, rel=1e-9)
    assert not result.zero_corrected


def _haldane(x1, n1, x0, n0, confidence):
    """The Katz bounds of the table with 0.5 added to each of its four cells, written out."""
    a1, m1, a0, m0 = x1 + 0.5, n1 + 1, x0 + 0.5, n0 + 1  # cells (a, m - a) each grow by 0.5
    ratio = (a1 / m1) / (a0 / m0)
    se = math.sqrt(1 / a1 - 1 / m1 + 1 / a0 - 1 / m0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    return ratio * math.exp(-z * se), ratio * math.exp(z * se)


@pytest.mark.parametrize(
    ("x1", "n1", "x0", "n0", "estimate", "zero_low", "inf_high"),
    [
        (0, 40, 7, 50, 0.0, True, False),  # 0% vs 14%: the ratio may be 0
        (5, 20, 0, 30, math.inf, False, True),  # 25% vs 0%: the ratio may be infinite
        (0, 1, 1, 1, 0.0, True, False),
        (2, 2, 30, 30, 1.0, False, False),  # a rate of 1 in both groups: the Katz se would be 0
        (3, 3, 10, 20, 2.0, False, False),
    ],
)
def test_katz_zero_cell_shows_the_observed_ratio_with_corrected_bounds(x1, n1, x0, n0, estimate, zero_low, inf_high):
    result = katz_ratio(x1=x1, n1=n1, x0=x0, n0=n0, confidence=0.9)
    low, high = _haldane(x1, n1, x0, n0, 0.9)
    assert result.zero_corrected
    assert result.estimate == pytest.approx(estimate)
    assert result.low == (0.0 if zero_low else pytest.approx(min(low, estimate)))
    assert result.high == (math.inf if inf_high else pytest.approx(max(high, estimate)))
    assert result.low < result.high  # never the degenerate [1, 1] of a plain Katz interval at rates of 1


def test_katz_both_zero_is_undefined():
    result = katz_ratio(x1=0, n1=10, x0=0, n0=300, confidence=0.95)
    assert math.isnan(result.estimate)
    assert (result.low, result.high) == (0.0, math.inf)


@pytest.mark.parametrize(("n1", "n0"), [(0, 10), (10, 0), (0, 0)])
def test_katz_empty_group(n1, n0):
    result = katz_ratio(x1=0, n1=n1, x0=0, n0=n0, confidence=0.95)
    assert math.isnan(result.estimate)
    assert (result.low, result.high) == (0.0, math.inf)


@PROPERTY
@given(g1=counts(), g0=counts(), confidence=confidences)
def test_katz_contains_estimate_and_inverts_on_swap(g1, g0, confidence):
    (x1, n1), (x0, n0) = g1, g0
    assume(n1 > 0 and n0 > 0 and x1 + x0 > 0)
    forward = katz_ratio(x1=x1, n1=n1, x0=x0, n0=n0, confidence=confidence)
    backward = katz_ratio(x1=x0, n1=n0, x0=x1, n0=n1, confidence=confidence)
    assert 0.0 <= forward.low <= forward.estimate <= forward.high <= math.inf
    assert forward.low < forward.high
    assert forward.zero_corrected == (min(x1, x0, n1 - x1, n0 - x0) == 0) == backward.zero_corrected
    with np.errstate(divide="ignore"):
        assert backward.estimate == pytest.approx(np.divide(1.0, forward.estimate), rel=1e-9)
        assert backward.low == pytest.approx(np.divide(1.0, forward.high), rel=1e-9)
        assert backward.high == pytest.approx(np.divide(1.0, forward.low), rel=1e-9)


def test_katz_bounds_beyond_a_float_are_infinite_not_an_error():
    """Tiny effective counts (clustered data) at an extreme level: the log half-width exceeds 709."""
    from fer_fairness.stats import katz_ratio

    confidence = 1 - 1e-15
    half_width = norm.isf((1 - confidence) / 2) * math.sqrt(2 * (1 / 0.0002 - 1 / 2))
    assert half_width > 709  # exp() of it would overflow
    result = katz_ratio(x1=0.0002, n1=2.0, x0=0.0002, n0=2.0, confidence=confidence)
    assert result.high == math.inf and result.low >= 0 and result.estimate == pytest.approx(1.0)
