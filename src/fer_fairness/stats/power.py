"""Power and sample size for the two-sided pooled two-proportion z-test (normal approximation)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from statsmodels.stats.proportion import power_proportions_2indep

from ._validation import check_alpha

_MAX_N = 1e12  # beyond this a "required" sample size is meaningless


def _check_target(power: float) -> None:
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")


def _is_rate(p: float) -> bool:
    return 0.0 <= p <= 1.0


def power_two_proportions(*, p1: float, p0: float, n1: float, n0: float, alpha: float) -> float:
    """Power of the two-sided pooled z-test of p1 == p0 at sizes n1, n0 and level alpha.

    Normal approximation (pooled variance under H0, unpooled under H1), guarded where it is known
    to overstate power: 0.0 when no table of these sizes can reach significance, and never more
    than the chance that both outcomes occur at all. 0.0 when a rate is outside [0, 1] or a
    group is empty.
    """
    return least_power(alternatives=(p1,), p0=p0, n1=n1, n0=n0, alpha=alpha)


def least_power(*, alternatives: tuple[float, ...], p0: float, n1: float, n0: float, alpha: float) -> float:
    """min(power_two_proportions(p1=p, ...) for p in alternatives), one approximation call for all.

    Every record judges power at both edges of its band; statsmodels' formula is elementwise, so
    one call on an array gives each alternative the very number a call of its own would.
    """
    check_alpha(alpha)
    if n1 < 0 or n0 < 0:
        raise ValueError(f"n1 and n0 must be >= 0, got n1={n1!r}, n0={n0!r}")
    if not alternatives:
        raise ValueError("alternatives must name at least one rate")
    if (n1 + n0) <= stats.norm.isf(alpha / 2) ** 2:
        # |z| <= sqrt(n1 + n0) for every 2x2 table (z^2 = Pearson X^2 <= N), so it never rejects.
        return 0.0
    powers = [_guarded(p1, p0, n1, n0) for p1 in alternatives]
    approximated = [p1 for p1, power in zip(alternatives, powers, strict=True) if power is None]
    if approximated:
        # Fleiss, Levin & Paik 2003, sec. 4.2. statsmodels: diff = prop1 - prop2, nobs1 belongs to
        # prop1, nobs2 = ratio * nobs1.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            approximate = power_proportions_2indep(
                np.array(approximated) - p0,
                p0,
                n1,
                ratio=n0 / n1,
                alpha=alpha,
                alternative="two-sided",
                return_results=False,
            )
        values = iter(np.atleast_1d(approximate).tolist())
        # Near a rate of 0 or 1 with few expected events the approximation overstates power (with
        # p0 = 0 and n0 > n1 it tends to a constant well above alpha as p1 -> 0). The test cannot
        # reject when every observation has the same outcome, so cap power at the chance that not.
        powers = [
            float(np.clip(min(next(values), 1.0 - _one_outcome(p1, p0, n1, n0)), 0.0, 1.0)) if power is None else power
            for p1, power in zip(alternatives, powers, strict=True)
        ]
    return min(powers)


def _guarded(p1: float, p0: float, n1: float, n0: float) -> float | None:
    """The power where the normal approximation is not asked (it would mislead); None elsewhere."""
    if not (_is_rate(p1) and _is_rate(p0)) or n1 == 0 or n0 == 0:
        return 0.0
    if p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0 == 0:
        # Both rates at 0 or 1: the table is certain, |z| = sqrt(n1 + n0) when the rates differ.
        return 0.0 if p1 == p0 else 1.0
    return None


def _one_outcome(p1: float, p0: float, n1: float, n0: float) -> float:
    """Probability that all n1 + n0 observations fail, plus that all succeed."""
    all_fail = math.exp(n1 * math.log1p(-p1) + n0 * math.log1p(-p0)) if max(p1, p0) < 1 else 0.0
    all_succeed = math.exp(n1 * math.log(p1) + n0 * math.log(p0)) if min(p1, p0) > 0 else 0.0
    return all_fail + all_succeed


def required_sample_size(*, p1: float, p0: float, ratio: float, alpha: float, power: float) -> float:
    """Smallest whole n0 (n1 = ratio * n0) at which the test reaches the power; inf if never."""
    check_alpha(alpha)
    _check_target(power)
    if not ratio > 0:
        raise ValueError(f"ratio must be > 0, got {ratio!r}")
    if p1 == p0 or not (_is_rate(p1) and _is_rate(p0)):
        return math.inf

    def shortfall(n0: float) -> float:
        return power_two_proportions(p1=p1, p0=p0, n1=ratio * n0, n0=n0, alpha=alpha) - power

    if shortfall(1.0) >= 0:
        return 1.0
    high = 2.0
    while shortfall(high) < 0:
        high *= 2
        if high > _MAX_N:
            return math.inf
    # brentq on the two-sided power: statsmodels' closed form keeps only one tail.
    # Root of the continuous power curve, then the nearest whole n0 that meets the target.
    n0 = math.ceil(brentq(shortfall, high / 2, high, xtol=1e-6))
    while shortfall(n0) < 0:
        n0 += 1
    while n0 > 1 and shortfall(n0 - 1) >= 0:
        n0 -= 1
    return float(n0)


def minimum_detectable_difference(*, p0: float, n1: float, n0: float, alpha: float, power: float) -> float:
    """Smallest difference d from which on the test detects every larger difference with the
    given power, p0 + d (<= 1) first, else p0 - d (>= 0); inf when even the largest difference in
    range (a rate of 1, or of 0) is not detected.

    Where the approximate power curve is not monotone, d is where it last crosses the target,
    so every larger difference (checked on a 100-point grid) is detected too.
    """
    # Hand-written: statsmodels solves for effect sizes (Cohen's h), not for p1 at a fixed p0.
    check_alpha(alpha)
    _check_target(power)
    if not _is_rate(p0) or n1 <= 0 or n0 <= 0:
        return math.inf
    for direction, reach in ((1.0, 1.0 - p0), (-1.0, p0)):
        if reach <= 0:
            continue

        def shortfall(d: float, direction: float = direction) -> float:
            p1 = min(1.0, max(0.0, p0 + direction * d))
            return power_two_proportions(p1=p1, p0=p0, n1=n1, n0=n0, alpha=alpha) - power

        if shortfall(reach) < 0:
            continue
        # The approximate power curve need not be monotone; to be safe, take the crossing after
        # which every larger difference on a grid reaches the power.
        grid = np.linspace(0.0, reach, 101)
        short = np.array([shortfall(d) for d in grid]) < 0
        last_short = int(np.flatnonzero(short)[-1]) if short.any() else -1
        if last_short < 0:
            return 0.0
        return float(brentq(shortfall, grid[last_short], grid[last_short + 1], xtol=1e-10))
    return math.inf
