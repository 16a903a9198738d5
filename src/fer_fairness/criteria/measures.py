"""Measures: one statistic of one comparison, before the family's correction is known.

A measure carries its estimate and raw p, and functions that give its interval and power at any
level, because the level depends on the size of the family it ends up in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from fer_fairness import stats
from fer_fairness.criteria.verdict import Band


@dataclass(frozen=True, kw_only=True)
class Measure:
    metric: str
    estimate: float
    p_value: float
    test_method: str
    band: Band
    threshold: str
    interval_at: Callable[[float], tuple[float, float]]  # confidence -> (low, high)
    power_at: Callable[[float], float] | None = None  # alpha -> power at the band's edge
    needed_n_at: Callable[[float, float], float] | None = None  # (alpha, power) -> n per group
    n: Mapping[str, int] = field(default_factory=dict)  # the denominators the statistic used
    rates: Mapping[str, float] = field(default_factory=dict)
    count_ratio: float | None = None


def _rate(x: int, n: int) -> float:
    return x / n if n else math.nan


def _worst_side(values: list[float], *, worst: Callable[[list[float]], float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return worst(finite) if finite else math.nan


def _power_functions(*, n1: int, n0: int, pooled: float, edges: list[float]):
    """Power at the band's edge (the weaker side) and the n per group that would reach a target."""

    def power_at(alpha: float) -> float:
        if not edges or not 0.0 < pooled < 1.0:
            return 0.0
        return min(stats.power_two_proportions(p1=p, p0=pooled, n1=n1, n0=n0, alpha=alpha) for p in edges)

    def needed_n_at(alpha: float, power: float) -> float:
        if not edges or not 0.0 < pooled < 1.0:
            return math.inf
        ratio = n1 / n0 if n0 else 1.0
        return max(stats.required_sample_size(p1=p, p0=pooled, ratio=ratio, alpha=alpha, power=power) for p in edges)

    return power_at, needed_n_at


@dataclass(frozen=True)
class _Comparison:
    """How two proportions are compared: the estimator, the band, and the rates at its edges."""

    estimator: Callable[..., stats.Estimate]
    band: Callable[[float], Band]
    threshold: Callable[[float], str]
    edges: Callable[[float, float], tuple[float, float]]  # (pooled rate, tolerance) -> alternatives


COMPARISONS = {
    # Newcombe 1998 hybrid score interval for p1 - p0; the band is +-tolerance.
    "difference": _Comparison(
        stats.newcombe_difference,
        lambda t: Band(low=-t, high=t),
        lambda t: f"|difference| <= {t:g}",
        lambda pooled, t: (pooled + t, pooled - t),
    ),
    # Katz 1978 log interval for p1 / p0 (zero-cell rule in stats.katz_ratio); band [1/r, r].
    "ratio": _Comparison(
        stats.katz_ratio,
        lambda r: Band(low=1 / r, high=r),
        lambda r: f"ratio in [{1 / r:.3g}, {r:g}]",
        lambda pooled, r: (pooled * r, pooled / r),
    ),
}


def two_proportions(
    *, compare: str, metric: str, group: str, reference: str, x1: int, n1: int, x0: int, n0: int, tolerance: float
) -> Measure:
    """Two proportions compared by difference or ratio; z-test (Fisher when counts are small).

    Power is judged at the band's edges around the pooled rate (the weaker side). For a ratio
    the raw count ratio x1 / x0 is carried for display only: it ignores group sizes.
    """
    how = COMPARISONS[compare]
    point = how.estimator(x1=x1, n1=n1, x0=x0, n0=n0, confidence=0.95)
    test = stats.two_proportion_test(x1=x1, n1=n1, x0=x0, n0=n0)
    pooled = (x1 + x0) / (n1 + n0)
    edges = [p for p in how.edges(pooled, tolerance) if 0.0 < p < 1.0 and p != pooled]
    power_at, needed_n_at = _power_functions(n1=n1, n0=n0, pooled=pooled, edges=edges)

    def interval_at(confidence: float) -> tuple[float, float]:
        est = how.estimator(x1=x1, n1=n1, x0=x0, n0=n0, confidence=confidence)
        return est.low, est.high

    zero_corrected = getattr(point, "zero_corrected", False)
    return Measure(
        metric=metric,
        estimate=point.estimate,
        p_value=test.p_value,
        test_method=test.method + (" (zero cell: +0.5 to every cell)" if zero_corrected else ""),
        band=how.band(tolerance),
        threshold=how.threshold(tolerance),
        interval_at=interval_at,
        power_at=power_at,
        needed_n_at=needed_n_at,
        n={group: n1, reference: n0},
        rates={group: _rate(x1, n1), reference: _rate(x0, n0)},
        count_ratio=(x1 / x0 if x0 else math.inf if x1 else math.nan) if compare == "ratio" else None,
    )


def accuracy_floor(*, group: str, x: int, n: int, minimum: float) -> Measure:
    """One group's accuracy against a floor: Wilson interval, one-sided exact binomial test."""
    test = stats.binomial_floor_test(successes=x, n=n, minimum=minimum)
    estimate = _rate(x, n)

    def interval_at(confidence: float) -> tuple[float, float]:
        ci = stats.wilson_interval(successes=x, n=n, confidence=confidence)
        return ci.low, ci.high

    def needed_n_at(alpha: float, power: float) -> float:
        # Normal approximation: the n at which the interval half-width equals the distance to the floor.
        gap = abs(estimate - minimum)
        if not n or gap == 0:
            return math.inf
        z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
        return z**2 * estimate * (1 - estimate) / gap**2

    return Measure(
        metric="accuracy",
        estimate=estimate,
        p_value=test.p_value,
        test_method="binomial (one-sided)",
        band=Band(low=minimum, high=1.0),
        threshold=f"accuracy >= {minimum:g}",
        interval_at=interval_at,
        needed_n_at=needed_n_at,
        n={group: n},
        rates={group: estimate},
    )


def stratified_difference(
    *, group: str, reference: str, counts1: np.ndarray, counts0: np.ndarray, correct: np.ndarray, tolerance: float
) -> Measure:
    """Accuracy difference within true emotions: Mantel-Haenszel risk difference, CMH test.

    ``counts1``/``counts0`` are (T, O) slices of the count tensor; ``correct`` the (T, O) mask.
    Power is approximated by the unstratified two-proportion power at the same n.
    """
    x1, n1 = (counts1 * correct).sum(axis=1), counts1.sum(axis=1)
    x0, n0 = (counts0 * correct).sum(axis=1), counts0.sum(axis=1)
    mh = stats.mantel_haenszel_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=0.95)
    table = np.stack([np.stack([x1, n1 - x1], axis=1), np.stack([x0, n0 - x0], axis=1)], axis=1)
    test = stats.cmh_association_test(table=table)
    total1, total0 = int(n1.sum()), int(n0.sum())
    pooled = float((x1.sum() + x0.sum()) / max(total1 + total0, 1))
    edges = [p for p in COMPARISONS["difference"].edges(pooled, tolerance) if 0.0 < p < 1.0]
    power_at, needed_n_at = _power_functions(n1=total1, n0=total0, pooled=pooled, edges=edges)

    def interval_at(confidence: float) -> tuple[float, float]:
        est = stats.mantel_haenszel_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=confidence)
        if est.low < est.high:
            return est.low, est.high
        # The Sato variance is 0 when every stratum is all-correct or all-wrong in both groups; a
        # zero-width interval would claim certainty, so fall back to the pooled Newcombe interval.
        pooled = stats.newcombe_difference(
            x1=int(x1.sum()), n1=total1, x0=int(x0.sum()), n0=total0, confidence=confidence
        )
        return pooled.low, pooled.high

    return Measure(
        metric="accuracy difference within emotions (Mantel-Haenszel)",
        estimate=mh.estimate,
        p_value=test.p_value,
        test_method=test.method,
        band=Band(low=-tolerance, high=tolerance),
        threshold=f"|difference| <= {tolerance:g}",
        interval_at=interval_at,
        power_at=power_at,
        needed_n_at=needed_n_at,
        n={group: total1, reference: total0},
        rates={group: _rate(int(x1.sum()), total1), reference: _rate(int(x0.sum()), total0)},
    )


def accuracy_spread(
    *,
    groups: tuple[str, ...],
    counts: np.ndarray,
    correct: np.ndarray,
    stratified: bool,
    tolerance: float,
    resamples: int,
    rng: np.random.Generator,
) -> Measure:
    """Omnibus: the spread (max - min) of group accuracies, with a count-bootstrap interval.

    Unstratified: raw accuracies, chi-square test of group x correct. Stratified: accuracies
    directly standardised to the pooled emotion mix, generalised CMH test by true emotion.
    """
    pooled_mix = counts.sum(axis=(0, 2)) / counts.sum()

    def group_accuracy(tensors: np.ndarray) -> np.ndarray:  # (B, G, T, O) -> (B, G)
        hits = (tensors * correct).sum(axis=3)
        totals = tensors.sum(axis=3)
        if not stratified:
            return hits.sum(axis=2) / totals.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = hits / totals
        return np.nansum(recall * pooled_mix, axis=2) / np.sum(np.where(totals > 0, pooled_mix, 0.0), axis=2)

    def spread(tensors: np.ndarray) -> np.ndarray:
        accuracy = group_accuracy(tensors)
        return accuracy.max(axis=1) - accuracy.min(axis=1)

    hits, totals = (counts * correct).sum(axis=(2)), counts.sum(axis=2)  # (G, T)
    if stratified:
        table = np.stack([hits, totals - hits], axis=2).transpose(1, 0, 2)  # (T, G, 2)
        test = stats.cmh_association_test(table=table)
    else:
        table = np.stack([hits.sum(axis=1), (totals - hits).sum(axis=1)], axis=1)
        test = stats.association_test(table=table, rng=rng)
    estimate = float(spread(counts[None])[0])
    boot_seed = int(rng.integers(2**32))

    def interval_at(confidence: float) -> tuple[float, float]:
        # The same resamples at every level: the interval only widens as the level rises.
        result = stats.bootstrap_counts(
            counts=counts,
            statistic=spread,
            n_resamples=resamples,
            confidence=confidence,
            rng=np.random.default_rng(boot_seed),
        )
        return result.low, result.high

    accuracy = group_accuracy(counts[None])[0]
    return Measure(
        metric="spread of " + ("emotion-standardised " if stratified else "") + "accuracy (max - min)",
        estimate=estimate,
        p_value=test.p_value,
        test_method=test.method,
        band=Band(low=-math.inf, high=tolerance),
        threshold=f"spread <= {tolerance:g}",
        interval_at=interval_at,
        n=dict(zip(groups, counts.sum(axis=(1, 2)).tolist(), strict=True)),
        rates=dict(zip(groups, accuracy.tolist(), strict=True)),
    )
