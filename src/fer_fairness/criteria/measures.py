"""Measures: one statistic of one comparison, before the family's correction is known.

A measure carries its estimate and raw p, and functions that give its interval and power at any
level, because the level depends on the size of the family it ends up in. Where images of one
person repeat, each group's counts are shrunk to effective counts by the group's design effect
(Rao & Scott 1992) before any interval, test or power is computed, so a person, not an image, is
the unit of evidence.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2, norm

from fer_fairness import stats
from fer_fairness.criteria.verdict import Band

Interval = tuple[float, float, float]  # (low, high, the confidence level actually used)


@dataclass(frozen=True, kw_only=True)
class Measure:
    metric: str
    estimate: float
    p_value: float  # "a difference exists" (information; the verdict reads the interval)
    test_method: str
    band: Band
    null: float | None  # the no-disparity value: 0 for differences, 1 for ratios; None for a floor
    threshold: str
    # confidence -> interval; exact=False skips the exact-size level step (cheap, for searches)
    interval_at: Callable[..., Interval]
    power_at: Callable[[float], float] | None = None  # alpha -> power at the band's edge
    needed_n_at: Callable[[float, float], float] | None = None  # (alpha, power) -> images per group
    n: Mapping[str, int] = field(default_factory=dict)  # the denominators the statistic used
    rates: Mapping[str, float] = field(default_factory=dict)
    count_ratio: float | None = None
    inference: str = "independent images"
    undefined: str = ""  # why the statistic cannot be computed; the verdict is then INCONCLUSIVE
    note: str = ""  # what the reader should know beyond the numbers (e.g. strata left out)


@dataclass(frozen=True, kw_only=True)
class Share:
    """x events among n evaluated images of one group, and how those images cluster by person."""

    x: int
    n: int
    deff: float = 1.0  # design effect (1: independent images)
    clusters: int = 0  # persons, when the images cluster

    @classmethod
    def of(cls, x: int, n: int, per_subject: tuple[np.ndarray, np.ndarray] | None = None) -> Share:
        if per_subject is None:
            return cls(x=int(x), n=int(n))
        xs, ns = per_subject
        return cls(x=int(x), n=int(n), deff=stats.design_effect(x=xs, n=ns), clusters=int(np.count_nonzero(ns)))

    @classmethod
    def of_sums(cls, sums) -> Share:
        """As ``of``, from the persons' sums (counts.PersonSums) instead of their counts."""
        deff = stats.design_effect_of_sums(
            clusters=sums.persons, x=sums.x, n=sums.n, xx=sums.xx, xn=sums.xn, nn=sums.nn
        )
        return cls(x=sums.x, n=sums.n, deff=deff, clusters=sums.persons)

    def factor(self, confidence: float) -> float:
        """What one image counts for less: the design effect, widened for an estimated variance."""
        if self.deff <= 1.0:
            return 1.0
        return self.deff * stats.small_cluster_factor(clusters=self.clusters, confidence=confidence)

    def effective(self, confidence: float) -> tuple[float, float]:
        f = self.factor(confidence)
        return self.x / f, self.n / f

    @property
    def rate(self) -> float:
        return self.x / self.n if self.n else math.nan


def inference_words(shares: list[Share]) -> str:
    clustered = [s for s in shares if s.deff > 1.0]
    if not clustered:
        return "independent images"
    effects = ", ".join(f"{s.deff:.2f}" for s in shares)
    return f"clustered by subject (design effect {effects}; Rao-Scott effective counts)"


def _rate(x: float, n: float) -> float:
    return x / n if n else math.nan


# A pure function of the level, asked once per record and per needed-n search over a few levels.
@functools.lru_cache(maxsize=1024)
def _z(alpha: float) -> float:
    return float(norm.isf(alpha / 2))


@functools.lru_cache(maxsize=64)
def _power_z(power: float) -> float:
    return float(norm.ppf(power))  # the run's target power: one value, asked by every inconclusive record


def _undefined(metric: str, why: str, *, band: Band, null: float | None, threshold: str, n, rates) -> Measure:
    def nothing(_confidence: float, *, exact: bool = True) -> Interval:
        return math.nan, math.nan, math.nan

    return Measure(
        metric=metric,
        estimate=math.nan,
        p_value=math.nan,
        test_method="",
        band=band,
        null=null,
        threshold=threshold,
        interval_at=nothing,
        n=n,
        rates=rates,
        undefined=why,
    )


@dataclass(frozen=True)
class _Comparison:
    """How two proportions are compared: estimator, band, no-disparity value, distance to the band."""

    estimator: Callable[..., stats.Estimate]
    band: Callable[[float], Band]
    threshold: Callable[[float], str]
    null: float
    edges: Callable[[float], tuple[float, float]]  # tolerance -> the band's edges
    scale: Callable[[float], float]  # the scale on which the estimate is normal (identity, log)
    unit_variance: Callable[[float, float], float]  # (p1, p0) -> n * variance of the estimate on that scale


COMPARISONS = {
    # Newcombe 1998 hybrid score interval for p1 - p0; the band is +-tolerance.
    "difference": _Comparison(
        stats.newcombe_difference,
        lambda t: Band(low=-t, high=t),
        lambda t: f"|difference| <= {t:g}",
        0.0,
        lambda t: (-t, t),
        lambda v: v,
        lambda p1, p0: p1 * (1 - p1) + p0 * (1 - p0),
    ),
    # Katz 1978 log interval for p1 / p0 (zero-cell rule in stats.katz_ratio); band [1/r, r].
    "ratio": _Comparison(
        stats.katz_ratio,
        lambda r: Band(low=1 / r, high=r),
        lambda r: f"ratio in [{1 / r:.3g}, {r:g}]",
        1.0,
        lambda r: (1 / r, r),
        lambda v: math.log(v) if v > 0 else -math.inf,
        lambda p1, p0: (1 - p1) / p1 + (1 - p0) / p0,
    ),
}


def _calibrated(compare: str, a: Share, b: Share, edges: tuple[float, float], confidence: float) -> float:
    """The level at which the interval's exact error at the band's edges stays within its promise."""
    calibrate = getattr(stats, "calibrated_confidence", None)
    if calibrate is None:
        return confidence
    x1, n1 = a.effective(confidence)
    x0, n0 = b.effective(confidence)
    n1_whole, n0_whole = max(1, round(n1)), max(1, round(n0))
    return calibrate(
        compare=compare,
        x1=min(round(x1), n1_whole),
        n1=n1_whole,
        x0=min(round(x0), n0_whole),
        n0=n0_whole,
        edges=edges,
        confidence=confidence,
    )


def _settling_n(*, distance: float, unit_variance: float, alpha: float, power: float) -> float:
    """Images per group (balanced) at which an interval at level 1 - alpha clears a point ``distance``
    away from the estimate with probability ``power``: n = (z_{1-alpha/2} + z_power)^2 V / distance^2."""
    if not distance > 0 or not math.isfinite(unit_variance):
        return math.inf
    return math.ceil((_z(alpha) + _power_z(power)) ** 2 * unit_variance / distance**2)


def _needed_n(how: _Comparison, a: Share, b: Share, tolerance: float):
    """(alpha, power) -> images per group that would settle the verdict if the rates are as observed.

    Rates are taken as (x + 1) / (n + 2) (Agresti & Caffo 2000), so a rate of 0 still has a variance:
    0 of 200 vs 0 of 200 non-answers is settled by a few hundred faces, not "never".
    """
    p1, p0 = (a.x + 1) / (a.n + 2), (b.x + 1) / (b.n + 2)
    estimate = how.scale(p1 / p0) if how.null == 1.0 else p1 - p0
    low, high = (how.scale(e) for e in how.edges(tolerance))
    deff = max(a.deff, b.deff)

    def needed_n_at(alpha: float, power: float) -> float:
        # Outside the band: the interval must clear the nearer edge (FAIL); inside: both (PASS).
        distance = (
            low - estimate
            if estimate < low
            else estimate - high
            if estimate > high
            else min(estimate - low, high - estimate)
        )
        return _settling_n(distance=distance, unit_variance=how.unit_variance(p1, p0), alpha=alpha, power=power) * deff

    return needed_n_at


def _power_at(compare: str, a: Share, b: Share, tolerance: float) -> Callable[[float], float]:
    """alpha -> power at the band's edges around the pooled rate (the weaker side), at effective n."""
    pooled = (a.x + b.x) / (a.n + b.n)
    if compare == "difference":
        alternatives = (pooled + tolerance, pooled - tolerance)
    else:
        alternatives = (pooled * tolerance, pooled / tolerance)
    alternatives = tuple(p for p in alternatives if 0.0 < p < 1.0 and p != pooled)

    def power_at(alpha: float) -> float:
        if not alternatives or not 0.0 < pooled < 1.0:
            return 0.0
        n1, n0 = a.n / a.factor(1 - alpha), b.n / b.factor(1 - alpha)
        return stats.least_power(alternatives=alternatives, p0=pooled, n1=n1, n0=n0, alpha=alpha)

    return power_at


def two_proportions(
    *, compare: str, metric: str, group: str, reference: str, a: Share, b: Share, tolerance: float, what: str
) -> Measure:
    """Two proportions compared by difference or ratio (``what`` names the denominator in words).

    Power is judged at the band's edges around the pooled rate (the weaker side). For a ratio the
    raw count ratio x1 / x0 is carried for display only: it ignores group sizes.
    """
    how = COMPARISONS[compare]
    band, threshold = how.band(tolerance), how.threshold(tolerance)
    n, rates = {group: a.n, reference: b.n}, {group: a.rate, reference: b.rate}
    count_ratio = (a.x / b.x if b.x else math.inf if a.x else math.nan) if compare == "ratio" else None
    empty = [g for g, s in ((group, a), (reference, b)) if s.n == 0]
    why = ""
    if empty:
        why = f"no {what} in {' or '.join(empty)}"
    elif compare == "ratio" and a.x == 0 and b.x == 0:
        why = f"the rate is 0 in both groups (0 of {a.n} and 0 of {b.n}): a ratio of two zero rates is undefined"
    if why:
        measure = _undefined(metric, why, band=band, null=how.null, threshold=threshold, n=n, rates=rates)
        return Measure(**{**measure.__dict__, "count_ratio": count_ratio})

    clustered = a.deff > 1.0 or b.deff > 1.0
    if clustered:
        x1, n1 = a.effective(0.95)
        x0, n0 = b.effective(0.95)
        test = _rao_scott_z(x1=x1, n1=n1, x0=x0, n0=n0)
    else:
        test = stats.two_proportion_test(x1=a.x, n1=a.n, x0=b.x, n0=b.n)
    point = how.estimator(x1=a.x, n1=a.n, x0=b.x, n0=b.n, confidence=0.95)

    def interval_at(confidence: float, *, exact: bool = True) -> Interval:
        level = _calibrated(compare, a, b, how.edges(tolerance), confidence) if exact else confidence
        x1, n1 = a.effective(level)
        x0, n0 = b.effective(level)
        est = how.estimator(x1=x1, n1=n1, x0=x0, n0=n0, confidence=level)
        return est.low, est.high, level

    zero_corrected = getattr(point, "zero_corrected", False)
    return Measure(
        metric=metric,
        estimate=point.estimate,
        p_value=test.p_value,
        test_method=test.method + (" (interval: zero cell, +0.5 to every cell)" if zero_corrected else ""),
        band=band,
        null=how.null,
        threshold=threshold,
        interval_at=interval_at,
        power_at=_power_at(compare, a, b, tolerance),
        needed_n_at=_needed_n(how, a, b, tolerance),
        n=n,
        rates=rates,
        count_ratio=count_ratio,
        inference=inference_words([a, b]),
    )


def _rao_scott_z(*, x1: float, n1: float, x0: float, n0: float) -> stats.TestResult:
    """Pooled z-test on effective counts (Rao & Scott 1992): the two-proportion test for clustered data."""
    pooled = (x1 + x0) / (n1 + n0)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n0)
    if variance <= 0:
        return stats.TestResult(statistic=0.0, p_value=1.0, method="z (Rao-Scott)")
    z = (x1 / n1 - x0 / n0) / math.sqrt(variance)
    return stats.TestResult(statistic=z, p_value=float(2 * norm.sf(abs(z))), method="z (Rao-Scott)")


def accuracy_floor(*, group: str, share: Share, minimum: float) -> Measure:
    """One group's accuracy against a floor: Wilson interval; one-sided exact binomial test as information."""
    band, threshold = Band(low=minimum, high=1.0), f"accuracy >= {minimum:g}"
    if share.n == 0:
        return _undefined(
            "accuracy",
            f"no evaluated faces in {group}",
            band=band,
            null=None,
            threshold=threshold,
            n={group: 0},
            rates={group: math.nan},
        )
    test = stats.binomial_floor_test(successes=share.x, n=share.n, minimum=minimum)
    estimate = share.rate

    def interval_at(confidence: float, *, exact: bool = True) -> Interval:  # no exact-size step here
        x, n = share.effective(confidence)
        ci = stats.wilson_interval(successes=x, n=n, confidence=confidence)
        return ci.low, ci.high, confidence

    def needed_n_at(alpha: float, power: float) -> float:
        p = (share.x + 1) / (share.n + 2)  # Agresti-Coull style: a rate of 0 or 1 still varies
        return _settling_n(distance=abs(estimate - minimum), unit_variance=p * (1 - p), alpha=alpha, power=power) * (
            share.deff
        )

    return Measure(
        metric="accuracy",
        estimate=estimate,
        p_value=test.p_value,
        test_method="binomial (one-sided)" if share.deff <= 1.0 else "binomial (one-sided, images as trials)",
        band=band,
        null=None,
        threshold=threshold,
        interval_at=interval_at,
        needed_n_at=needed_n_at,
        n={group: share.n},
        rates={group: estimate},
        inference=inference_words([share]),
    )


# Below this many evaluated faces of one emotion in either group, the Mantel-Haenszel Wald interval
# errs beyond its level at corrected levels (simulated: 1.2x its one-sided error at 99.9% with
# strata of 20, 1.9x with strata of 10, 3.3x with 6), so such strata are left out, and said so.
MIN_STRATUM = 20


def usable_strata(labels: tuple[str, ...], n1: np.ndarray, n0: np.ndarray, names: tuple[str, str]):
    """(mask of emotions both groups have at least MIN_STRATUM faces of, words for those left out)."""
    shared = (n1 > 0) & (n0 > 0)
    keep = shared & (n1 >= MIN_STRATUM) & (n0 >= MIN_STRATUM)
    left = [
        f"{labels[k]} ({', '.join(f'{g}={int(c)}' for g, c in zip(names, (n1[k], n0[k]), strict=True))})"
        for k in np.flatnonzero(shared & ~keep)
    ]
    words = f"emotions with fewer than {MIN_STRATUM} faces in a group: {', '.join(left)}" if left else ""
    return keep, words


def stratified_difference(
    *,
    group: str,
    reference: str,
    labels: tuple[str, ...],
    x1: np.ndarray,
    n1: np.ndarray,
    x0: np.ndarray,
    n0: np.ndarray,
    a: Share,
    b: Share,
    tolerance: float,
) -> Measure:
    """Accuracy difference within true emotions: Mantel-Haenszel risk difference, CMH test.

    ``x``/``n`` are correct and evaluated counts per true emotion; ``a``/``b`` the groups' overall
    shares, whose design effects shrink every stratum. Power is approximated by the unstratified
    two-proportion power at the same n.
    """
    band, threshold = Band(low=-tolerance, high=tolerance), f"|difference| <= {tolerance:g}"
    metric = "accuracy difference within emotions (Mantel-Haenszel)"
    n, rates = {group: a.n, reference: b.n}, {group: a.rate, reference: b.rate}
    keep, left_out = usable_strata(labels, n1, n0, (group, reference))
    if not keep.any():
        why = f"no emotion has {MIN_STRATUM} or more evaluated faces in both {group} and {reference}"
        why += f" ({left_out})" if left_out else ""
        return _undefined(metric, why, band=band, null=0.0, threshold=threshold, n=n, rates=rates)
    x1, n1, x0, n0 = (np.where(keep, v, 0) for v in (x1, n1, x0, n0))
    mh = stats.mantel_haenszel_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=0.95)
    table = np.stack([np.stack([x1, n1 - x1], axis=1), np.stack([x0, n0 - x0], axis=1)], axis=1)
    test = stats.cmh_association_test(table=table)
    deff = max(a.deff, b.deff)
    if deff > 1.0:
        # First-order Rao-Scott correction of the CMH statistic by the design effect.
        test = stats.TestResult(
            statistic=test.statistic / deff, p_value=float(chi2.sf(test.statistic / deff, 1)), method="cmh (Rao-Scott)"
        )

    def interval_at(confidence: float, *, exact: bool = True) -> Interval:
        # The exact-size level of the pooled comparison: small strata make the Wald interval err at
        # least as much as the pooled Newcombe interval does at the same totals.
        level = _calibrated("difference", a, b, (-tolerance, tolerance), confidence) if exact else confidence
        f1, f0 = a.factor(level), b.factor(level)
        est = stats.mantel_haenszel_difference(x1=x1 / f1, n1=n1 / f1, x0=x0 / f0, n0=n0 / f0, confidence=level)
        return est.low, est.high, level

    return Measure(
        metric=metric,
        estimate=mh.estimate,
        p_value=test.p_value,
        test_method=test.method,
        band=band,
        null=0.0,
        threshold=threshold,
        interval_at=interval_at,
        power_at=_power_at("difference", a, b, tolerance),
        needed_n_at=_needed_n(COMPARISONS["difference"], a, b, tolerance),
        n=n,
        rates=rates,
        inference=inference_words([a, b]),
        note=f"left out of the within-emotion comparison: {left_out}" if left_out else "",
    )


def accuracy_spread(
    *,
    groups: tuple[str, ...],
    hits: np.ndarray,
    totals: np.ndarray,
    shares: list[Share],
    stratified: bool,
    tolerance: float,
    rng: np.random.Generator,
) -> Measure:
    """Omnibus: the largest accuracy gap between any two groups, with a simultaneous interval.

    ``hits``/``totals`` are (G, T) correct and evaluated counts. The interval is read from
    Bonferroni-simultaneous intervals of every pairwise gap (Newcombe, or Mantel-Haenszel within
    emotions when stratified): if every pairwise gap d_ij lies in [L_ij, U_ij], the true spread
    max |d_ij| lies in [max dist(0, [L_ij, U_ij]), max max(|L_ij|, |U_ij|)]. Unlike a bootstrap of
    max - min, which is biased upward (with equal accuracies it never reaches 0), this interval
    covers at its level. The chi-square (or CMH) p-value of any association is information.
    """
    metric = "largest " + ("within-emotion " if stratified else "") + "accuracy gap between groups"
    band, threshold = Band(low=0.0, high=tolerance), f"spread <= {tolerance:g}"
    n = dict(zip(groups, totals.sum(axis=1).astype(int).tolist(), strict=True))
    rates = {g: s.rate for g, s in zip(groups, shares, strict=True)}
    if len(groups) < 2:
        why = "fewer than two groups have evaluated faces"
        return _undefined(metric, why, band=band, null=0.0, threshold=threshold, n=n, rates=rates)
    pairs = [(i, j) for i in range(len(groups)) for j in range(i + 1, len(groups))]
    if stratified:
        usable = {(i, j): (totals[i] >= MIN_STRATUM) & (totals[j] >= MIN_STRATUM) for i, j in pairs}
        pairs = [pair for pair in pairs if usable[pair].any()]
        if not pairs:
            why = f"no two groups both have {MIN_STRATUM} or more evaluated faces of one emotion"
            return _undefined(metric, why, band=band, null=0.0, threshold=threshold, n=n, rates=rates)

    def pair_interval(i: int, j: int, confidence: float) -> stats.Estimate:
        fi, fj = shares[i].factor(confidence), shares[j].factor(confidence)
        if stratified:  # strata too small for the Wald interval are left out (see MIN_STRATUM)
            keep = usable[(i, j)]
            return stats.mantel_haenszel_difference(
                x1=np.where(keep, hits[i], 0) / fi,
                n1=np.where(keep, totals[i], 0) / fi,
                x0=np.where(keep, hits[j], 0) / fj,
                n0=np.where(keep, totals[j], 0) / fj,
                confidence=confidence,
            )
        return stats.newcombe_difference(
            x1=hits[i].sum() / fi,
            n1=totals[i].sum() / fi,
            x0=hits[j].sum() / fj,
            n0=totals[j].sum() / fj,
            confidence=confidence,
        )

    estimate = max(abs(pair_interval(i, j, 0.95).estimate) for i, j in pairs)

    def interval_at(confidence: float, *, exact: bool = True) -> Interval:  # no exact-size step here
        each = 1.0 - (1.0 - confidence) / len(pairs)  # Bonferroni over the pairs
        bounds = [pair_interval(i, j, each) for i, j in pairs]
        low = max(max(e.low, -e.high, 0.0) for e in bounds)
        high = max(max(abs(e.low), abs(e.high)) for e in bounds)
        return low, high, confidence

    if stratified:
        table = np.stack([hits, totals - hits], axis=2).transpose(1, 0, 2)  # (T, G, 2)
        test = stats.cmh_association_test(table=table.astype(np.int64))
    else:
        table = np.stack([hits.sum(axis=1), (totals - hits).sum(axis=1)], axis=1).astype(np.int64)
        test = stats.association_test(table=table, rng=rng)
    deff = float(np.mean([s.deff for s in shares]))
    if deff > 1.0:
        # First-order Rao-Scott (1981) correction: the statistic over the mean design effect.
        dof = max(len(groups) - 1, 1)
        test = stats.TestResult(
            statistic=test.statistic / deff,
            p_value=float(chi2.sf(test.statistic / deff, dof)),
            method=test.method.split("-")[0] + " (Rao-Scott)",
        )
    return Measure(
        metric=metric,
        estimate=estimate,
        p_value=test.p_value,
        test_method=test.method,
        band=band,
        null=0.0,
        threshold=threshold,
        interval_at=interval_at,
        n=n,
        rates=rates,
        inference=inference_words(shares),
    )
