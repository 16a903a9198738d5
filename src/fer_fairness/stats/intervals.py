"""Confidence intervals for one proportion, a difference and a ratio of two proportions."""

from __future__ import annotations

import functools
import math

from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from ._results import Estimate, Interval, RatioEstimate
from ._validation import check_confidence, check_count


def wilson_interval(*, successes: float, n: float, confidence: float) -> Interval:
    """Wilson score interval for successes / n; n == 0 gives [0, 1]. Counts may be effective (real)."""
    check_count(successes=successes, n=n, real=True)
    check_confidence(confidence)
    if n == 0:
        return Interval(low=0.0, high=1.0)
    # Wilson 1927 score interval
    low, high = proportion_confint(successes, n, alpha=1.0 - confidence, method="wilson")
    # The score interval's bounds are exactly 0 / 1 at the boundary; pin them against rounding.
    low = 0.0 if successes == 0 else float(low)
    high = 1.0 if successes == n else float(high)
    return Interval(low=low, high=high)


def newcombe_difference(*, x1: float, n1: float, x0: float, n0: float, confidence: float) -> Estimate:
    """p1 - p0 with the Newcombe hybrid score interval; an empty group gives nan in [-1, 1].

    Counts may be real-valued: effective counts of clustered data (Rao & Scott 1992)."""
    check_count(successes=x1, n=n1, names=("x1", "n1"), real=True)
    check_count(successes=x0, n=n0, names=("x0", "n0"), real=True)
    check_confidence(confidence)
    if n1 == 0 or n0 == 0:
        return Estimate(estimate=math.nan, low=-1.0, high=1.0)
    # Newcombe 1998, method 10 (hybrid score: square-and-add of two Wilson intervals)
    low, high = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff", alpha=1.0 - confidence)
    diff = x1 / n1 - x0 / n0
    return Estimate(
        estimate=diff,
        low=max(-1.0, min(diff, float(low))),
        high=min(1.0, max(diff, float(high))),
    )


def katz_ratio(*, x1: float, n1: float, x0: float, n0: float, confidence: float) -> RatioEstimate:
    """(x1/n1) / (x0/n0) with the Katz log interval.

    The estimate is always the observed ratio of rates: 0 when x1 == 0 < x0, inf when x0 == 0 < x1,
    nan when both are 0 (two zero rates say nothing about their ratio) or a group is empty.

    Zero cells: when any cell of the 2x2 table is 0 (x == 0, or x == n, a rate of 1) the log
    standard error is undefined or 0, so the bounds are computed with 0.5 added to each of the four
    cells (x + 0.5 events, n + 1 trials) and zero_corrected is True (Haldane 1956 / Anscombe 1956,
    as recommended for the risk ratio by Pagano & Gauvreau, Principles of Biostatistics). A rate of
    0 cannot bound the ratio away from 0 (x1 == 0: low = 0) or from infinity (x0 == 0: high = inf),
    and the interval always contains the observed ratio. Counts may be real-valued (effective
    counts of clustered data).
    """
    check_count(successes=x1, n=n1, names=("x1", "n1"), real=True)
    check_count(successes=x0, n=n0, names=("x0", "n0"), real=True)
    check_confidence(confidence)
    if n1 == 0 or n0 == 0:
        return RatioEstimate(estimate=math.nan, low=0.0, high=math.inf, zero_corrected=False)
    z = _two_sided_z(confidence)
    if 0 < x1 < n1 and 0 < x0 < n0:
        # Katz et al. 1978 log interval (statsmodels' method="log" gives the same for whole counts).
        estimate = (x1 / n1) / (x0 / n0)
        half_width = z * math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0)
        return RatioEstimate(
            estimate=estimate,
            low=estimate * math.exp(-half_width),
            high=estimate * _exp(half_width),
            zero_corrected=False,
        )
    # Hand-written: statsmodels' "log-adjusted" adds 0.5 to n rather than 1 (not Haldane-Anscombe).
    a1, m1, a0, m0 = x1 + 0.5, n1 + 1.0, x0 + 0.5, n0 + 1.0
    corrected = (a1 / m1) / (a0 / m0)
    half_width = z * math.sqrt(1 / a1 - 1 / m1 + 1 / a0 - 1 / m0)
    low, high = corrected * math.exp(-half_width), corrected * _exp(half_width)
    if x1 == 0 and x0 == 0:
        return RatioEstimate(estimate=math.nan, low=0.0, high=math.inf, zero_corrected=True)
    if x1 == 0:
        return RatioEstimate(estimate=0.0, low=0.0, high=high, zero_corrected=True)
    if x0 == 0:
        return RatioEstimate(estimate=math.inf, low=low, high=math.inf, zero_corrected=True)
    estimate = (x1 / n1) / (x0 / n0)  # a rate of 1 in one or both groups
    return RatioEstimate(estimate=estimate, low=min(low, estimate), high=max(high, estimate), zero_corrected=True)


# Every ratio record asks for its interval at one of a few levels; a pure function of the level.
@functools.lru_cache(maxsize=1024)
def _two_sided_z(confidence: float) -> float:
    return float(stats.norm.isf((1.0 - confidence) / 2))


def _exp(value: float) -> float:
    """exp that reaches infinity instead of raising: at extreme levels or tiny effective counts a Katz
    bound exceeds what a float holds, and that bound is then +inf (the interval is unbounded above)."""
    return math.exp(value) if value < 709.0 else math.inf
