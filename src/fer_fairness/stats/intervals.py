"""Confidence intervals for one proportion, a difference and a ratio of two proportions."""

from __future__ import annotations

import math

from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from ._results import Estimate, Interval, RatioEstimate
from ._validation import check_confidence, check_count


def wilson_interval(*, successes: int, n: int, confidence: float) -> Interval:
    """Wilson score interval for successes / n; n == 0 gives [0, 1]."""
    check_count(successes=successes, n=n)
    check_confidence(confidence)
    if n == 0:
        return Interval(low=0.0, high=1.0)
    # Wilson 1927 score interval
    low, high = proportion_confint(successes, n, alpha=1.0 - confidence, method="wilson")
    # The score interval's bounds are exactly 0 / 1 at the boundary; pin them against rounding.
    low = 0.0 if successes == 0 else float(low)
    high = 1.0 if successes == n else float(high)
    return Interval(low=low, high=high)


def newcombe_difference(*, x1: int, n1: int, x0: int, n0: int, confidence: float) -> Estimate:
    """p1 - p0 with the Newcombe hybrid score interval; an empty group gives nan in [-1, 1]."""
    check_count(successes=x1, n=n1, names=("x1", "n1"))
    check_count(successes=x0, n=n0, names=("x0", "n0"))
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


def katz_ratio(*, x1: int, n1: int, x0: int, n0: int, confidence: float) -> RatioEstimate:
    """(x1/n1) / (x0/n0) with the Katz log interval.

    Zero cells: when x1 == 0 or x0 == 0 the ratio or its log standard error is undefined, so
    0.5 is added to each of the four cells of the 2x2 table (x + 0.5 events, n + 1 trials) for
    both the estimate and the interval, and zero_corrected is True (Haldane 1956 / Anscombe 1956
    correction, as recommended for the risk ratio by Pagano & Gauvreau, Principles of
    Biostatistics). When both x1 and x0 are 0 the rates carry no information about the ratio:
    the estimate is 1.0 and the interval is the corrected width centred on 1.
    An empty group (n1 == 0 or n0 == 0) gives nan in (0, inf).
    """
    check_count(successes=x1, n=n1, names=("x1", "n1"))
    check_count(successes=x0, n=n0, names=("x0", "n0"))
    check_confidence(confidence)
    if n1 == 0 or n0 == 0:
        return RatioEstimate(estimate=math.nan, low=0.0, high=math.inf, zero_corrected=False)
    if x1 > 0 and x0 > 0:
        # Katz et al. 1978 log interval; statsmodels implements it exactly (method="log").
        low, high = confint_proportions_2indep(x1, n1, x0, n0, method="log", compare="ratio", alpha=1.0 - confidence)
        return RatioEstimate(estimate=(x1 / n1) / (x0 / n0), low=float(low), high=float(high), zero_corrected=False)
    # Hand-written: statsmodels' "log-adjusted" adds 0.5 to n rather than 1 (not Haldane-Anscombe).
    a1, m1, a0, m0 = x1 + 0.5, n1 + 1.0, x0 + 0.5, n0 + 1.0
    log_ratio = 0.0 if x1 == 0 and x0 == 0 else math.log((a1 / m1) / (a0 / m0))
    z = float(stats.norm.isf((1.0 - confidence) / 2))
    half_width = z * math.sqrt(1 / a1 - 1 / m1 + 1 / a0 - 1 / m0)
    return RatioEstimate(
        estimate=math.exp(log_ratio),
        low=math.exp(log_ratio - half_width),
        high=math.exp(log_ratio + half_width),
        zero_corrected=True,
    )
