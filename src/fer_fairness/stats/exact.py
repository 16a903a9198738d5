"""Exact-size calibration of the two-proportion intervals for small samples and rare rates.

A verdict reads one two-sided interval against a tolerance band, so it keeps its promise only if,
with the truth exactly at a band edge, the interval lies wholly on either side of that edge with
probability at most half the error budget. The Newcombe and Katz intervals do so asymptotically;
for the group sizes and rare rates of a confusion table they can miss it by a factor of 1.5 or more.
This module enumerates every 2x2 table to find the level at which they keep it for the actual sizes.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
from scipy import stats

from ._validation import check_confidence, check_count

Compare = Literal["difference", "ratio"]

# Share of each side's error budget spent on the nuisance set (Berger & Boos 1994): the worst
# case is taken over a (1 - gamma) interval for the pooled rate, and gamma is added back as the
# chance that the interval missed, so gamma = share * budget and the grid target is the rest.
_NUISANCE_SHARE = 0.1
_GRID_POINTS = 41
_Z_CAP = 8.0  # level 1 - 1.3e-15: wide enough that no edge is ever excluded; past it, give up
_Z_TOL = 1e-3  # resolution of the level search on the normal-quantile scale
_FIRST_STEP = 0.25
_NEGLIGIBLE = 1e-6  # tables below this share of the target (per count) are charged, not enumerated

Bounds = Callable[[float], tuple[np.ndarray, np.ndarray]]
# edge, kept counts of group 1 and group 0, their pmfs at each grid rate, the mass left out per rate
_EdgeWeights = tuple[float, slice, slice, np.ndarray, np.ndarray, np.ndarray]


def calibrated_confidence(
    *,
    compare: Compare,
    x1: float,
    n1: float,
    x0: float,
    n0: float,
    edges: tuple[float, ...],
    confidence: float,
    max_tables: int = 250_000,
) -> float:
    """Smallest level c >= confidence at which the interval keeps its promise at every edge exactly.

    Group 1 (x1 of n1) is compared with the reference group 0 (x0 of n0). For each edge e (a
    difference p1 - p0 = e, or a ratio p1 / p0 = e), the probability over all (n1 + 1) * (n0 + 1)
    tables that the interval at level c lies wholly at or above e, and that it lies wholly at or
    below e, are each at most (1 - confidence) / 2. The rate is a nuisance parameter: the worst case
    is taken over a 41-point grid (ends included) spanning a (1 - gamma) Clopper-Pearson interval
    for the pooled rate (x1 + x0) / (n1 + n0), and gamma is charged against the budget (Berger &
    Boos 1994, JASA 89:1012), so the grid target is (1 - confidence) / 2 - gamma with gamma = 0.1 *
    (1 - confidence) / 2. The pooled count of two binomials of different rates has tails no heavier
    than one binomial of their mean (Hoeffding 1956, Theorem 4), so the interval still covers the
    mean rate with probability >= 1 - gamma. The level is found to 1e-3 on the normal-quantile
    scale; a larger level only widens the interval, so the level chosen from the observed pooled
    count keeps the promise whatever that count turns out to be.

    compare "difference" uses the Newcombe hybrid score interval (stats.newcombe_difference),
    "ratio" the Katz log interval with its zero-cell rule (stats.katz_ratio).
    Effective counts (real-valued, from clustered data) are enumerated as the nearest whole sizes.
    When a group is empty, or there are more than max_tables tables (large groups, where the
    asymptotics these intervals rest on hold), the nominal confidence is returned unchanged. When
    even a level of 1 - 1.3e-15 falls short, that level is returned: the interval becomes very
    wide and the verdict inconclusive, the honest outcome for so little information.
    """
    if compare not in ("difference", "ratio"):
        raise ValueError(f"compare must be 'difference' or 'ratio', got {compare!r}")
    check_count(successes=x1, n=n1, names=("x1", "n1"), real=True)
    check_count(successes=x0, n=n0, names=("x0", "n0"), real=True)
    check_confidence(confidence)
    edges = _check_edges(compare, edges)
    if not isinstance(max_tables, numbers.Integral) or isinstance(max_tables, bool) or max_tables < 1:
        raise ValueError(f"max_tables must be a positive integer, got {max_tables!r}")
    # Effective (real-valued) counts of clustered data are enumerated as the nearest whole sizes.
    sizes = round(n1), round(n0)
    if 0 in sizes or (sizes[0] + 1) * (sizes[1] + 1) > max_tables:
        return confidence
    pooled = min(round(x1 + x0), sum(sizes))
    z = _calibrated_z(compare, *sizes, pooled, edges, float(confidence))
    return confidence if z is None else _level(z)


def _check_edges(compare: Compare, edges: tuple[float, ...]) -> tuple[float, ...]:
    try:
        values = tuple(float(edge) for edge in edges)
    except (TypeError, ValueError):
        raise ValueError(f"edges must be a tuple of numbers, got {edges!r}") from None
    if compare == "difference":
        allowed, ok = "in (-1, 1)", all(-1.0 < edge < 1.0 for edge in values)
    else:
        allowed, ok = "finite and > 0", all(0.0 < edge < math.inf for edge in values)
    if not values or not ok:
        raise ValueError(f"edges for a {compare} must be one or more numbers {allowed}, got {edges!r}")
    return values


def _level(z: float) -> float:
    """2 * Phi(z) - 1, nudged up so that the level maps back to a quantile of at least z."""
    level = 1.0 - 2.0 * float(stats.norm.sf(z))
    # The caller turns the level back into z = isf((1 - level) / 2); near 1 the subtraction
    # rounds, and a quantile below z could undo the calibration.
    while float(stats.norm.isf((1.0 - level) / 2)) < z:
        level = float(np.nextafter(level, 1.0))
    return level


@functools.lru_cache(maxsize=4096)
def _calibrated_z(
    compare: Compare, n1: int, n0: int, pooled: int, edges: tuple[float, ...], confidence: float
) -> float | None:
    """Normal quantile of the calibrated level, or None when the nominal level already suffices."""
    budget = (1.0 - confidence) / 2
    weights, target = _weights_at(compare, n1, n0, pooled, edges, confidence)
    if not weights:
        return None  # no edge is at risk: every level meets the target, the nominal one included
    bounds, weights = _in_box(compare, n1, n0, weights)

    def meets(z: float) -> bool:
        return not _exceeds(bounds(z), weights, target)

    z_nominal = float(stats.norm.isf(budget))
    if meets(z_nominal):
        return None
    cap = max(_Z_CAP, z_nominal)
    if not meets(cap):
        return cap
    # Error probabilities only fall as z grows (the intervals are nested), so bracket then bisect.
    low, step = z_nominal, _FIRST_STEP
    high = min(cap, low + step)
    while not meets(high):
        low, step = high, 2 * step
        high = min(cap, high + step)
    while high - low > _Z_TOL:
        middle = (low + high) / 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


def _weights_at(
    compare: Compare, n1: int, n0: int, pooled: int, edges: tuple[float, ...], confidence: float, *, window: bool = True
) -> tuple[list[_EdgeWeights], float]:
    """The edge weights the level search at ``confidence`` enumerates, and its grid target (the
    side's budget less gamma, Berger & Boos 1994: see calibrated_confidence)."""
    budget = (1.0 - confidence) / 2
    gamma = _NUISANCE_SHARE * budget
    target = budget - gamma
    negligible = _NEGLIGIBLE * target / (n1 + n0 + 2)
    return _edge_weights(compare, n1, n0, pooled, edges, gamma, negligible, window=window), target


def _exceeds(bounds: tuple[np.ndarray, np.ndarray], weights: list[_EdgeWeights], target: float) -> bool:
    """Whether the interval excludes some edge from one side with probability over target at some grid rate."""
    # The level search asks only this, and about half its steps fail: stop at the first excess
    # instead of summing every edge and side (the answer is the same; NaN never counts as over).
    return any(error > target for error in _errors(bounds, weights))


def _errors(bounds: tuple[np.ndarray, np.ndarray], weights: list[_EdgeWeights]) -> Iterator[float]:
    """Per edge and side, the largest probability over grid rates that the interval excludes the edge."""
    low, high = bounds
    for edge, rows, columns, pmf1, pmf0, tail in weights:
        cumulative = None  # both sides share it; computed only if some table is excluded
        for excluded in (low[rows, columns] >= edge, high[rows, columns] <= edge):
            if not excluded.any():
                # Every term is 0 (the pmfs are finite), so the sum is exactly 0 and the error is the
                # tail's alone: about one sum in ten on the benchmark data, skipped.
                yield float(tail.max())
                continue
            # Sum over tables of pmf1[x1] * pmf0[x0]; the mass of the tables left out counts as error.
            if cumulative is None:
                cumulative = _cumulative(pmf0)
            yield float((_excluded_mass(pmf1, excluded, pmf0, cumulative) + tail).max())


def _cumulative(pmf0: np.ndarray) -> np.ndarray:
    """Per grid rate, the mass of the first t counts (t = 0..J), then of the last s counts (s = 0..J)."""
    rates, columns = pmf0.shape
    sums = np.zeros((rates, 2 * (columns + 1)))
    np.cumsum(pmf0, axis=1, out=sums[:, 1 : columns + 1])
    # The upper tail is summed from its own end, not taken as total minus head: no cancellation.
    np.cumsum(pmf0[:, ::-1], axis=1, out=sums[:, columns + 2 :])
    return sums


def _excluded_mass(pmf1: np.ndarray, excluded: np.ndarray, pmf0: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """Per grid rate g, the sum over excluded tables (i, j) of pmf1[g, i] * pmf0[g, j].

    The same sum as _excluded_mass_reference, grouped by row: a row whose excluded tables are the
    first t (or last s) counts of group 0 contributes pmf1[g, i] times the cumulative mass of those
    counts, so the work is O(I * J) to classify the rows plus O(G * I), not O(G * I * J). Only the
    order of additions of non-negative terms changes (the results agree to rounding, not bitwise).
    """
    # The Newcombe and Katz lower bounds fall as x0 grows and the upper ones rise, so each row of
    # low >= edge is usually a prefix and each row of high <= edge a suffix; the zero-cell rules can
    # break that, so every row is checked, and one that is neither is summed term by term.
    columns = excluded.shape[1]
    count = np.count_nonzero(excluded, axis=1)
    # A row is a prefix when its first False sits at its count of True, and a suffix when its first
    # True sits count places from the end (an all-True row: argmin is 0, so it is taken as a suffix).
    prefix = np.argmin(excluded, axis=1) == count
    suffix = ~prefix & (np.argmax(excluded, axis=1) == columns - count)
    # Index into _cumulative's layout: the head of length t at t, the tail of length s at J + 1 + s.
    mass = pmf1 * cumulative[:, count + (columns + 1) * suffix]
    neither = ~(prefix | suffix)
    if neither.any():
        mass[:, neither] = 0.0
        return mass.sum(axis=1) + _excluded_mass_reference(pmf1[:, neither], excluded[neither], pmf0)
    return mass.sum(axis=1)


def _excluded_mass_reference(pmf1: np.ndarray, excluded: np.ndarray, pmf0: np.ndarray) -> np.ndarray:
    """The sum of _excluded_mass term by term: O(G * I * J), kept as its oracle and for irregular rows."""
    # einsum without optimize stays out of BLAS, whose threads stall on a loaded machine.
    return np.einsum("gi,ij,gj->g", pmf1, excluded.astype(np.float64), pmf0)


def _in_box(compare: Compare, n1: int, n0: int, weights: list[_EdgeWeights]) -> tuple[Bounds, list[_EdgeWeights]]:
    """Bounds for the box of tables some edge keeps, and the weights with their slices into that box."""
    # The error sums read only each edge's kept tables, so the intervals are computed for the box
    # that holds them all; elementwise, each table's bounds are the same floats as on the full table.
    rows = (min(kept.start for _, kept, *_ in weights), max(kept.stop for _, kept, *_ in weights))
    columns = (min(kept.start for _, _, kept, *_ in weights), max(kept.stop for _, _, kept, *_ in weights))
    boxed = [
        (edge, _shifted(kept1, rows[0]), _shifted(kept0, columns[0]), pmf1, pmf0, tail)
        for edge, kept1, kept0, pmf1, pmf0, tail in weights
    ]
    return _table_bounds(compare, n1, n0, rows, columns), boxed


def _edge_weights(
    compare: Compare,
    n1: int,
    n0: int,
    pooled: int,
    edges: tuple[float, ...],
    gamma: float,
    negligible: float,
    *,
    window: bool = True,
) -> list[_EdgeWeights]:
    """Per edge, the binomial pmfs of both groups at each grid rate with the truth at that edge.

    window=False computes each pmf for every count (the reference the window must reproduce).
    """
    total = n1 + n0
    # Clopper & Pearson 1934 interval for the pooled rate at level 1 - gamma.
    mean_low = 0.0 if pooled == 0 else float(stats.beta.ppf(gamma / 2, pooled, total - pooled + 1))
    mean_high = 1.0 if pooled == total else float(stats.beta.isf(gamma / 2, pooled + 1, total - pooled))
    grids = []
    for edge in edges:
        # The pooled mean is (n1 * p1 + n0 * p0) / total; solve for p0 with p1 tied to p0 by the edge.
        if compare == "difference":
            shift = n1 * edge / total
            p0_low, p0_high = max(mean_low - shift, 0.0, -edge), min(mean_high - shift, 1.0, 1.0 - edge)
        else:
            scale = total / (n1 * edge + n0)
            p0_low, p0_high = mean_low * scale, min(mean_high * scale, 1.0, 1.0 / edge)
        if p0_low > p0_high:
            continue  # no rate at this edge is consistent with the pooled count: only gamma is at risk
        p0 = np.linspace(p0_low, p0_high, _GRID_POINTS)
        p1 = np.clip(p0 + edge if compare == "difference" else p0 * edge, 0.0, 1.0)
        grids.append((edge, p1, p0))
    # Only tables with a say at some grid rate are enumerated; the rest are charged in full.
    rates = [rate for _, p1, p0 in grids for rate in (p1, p0)]
    windows = _windows([n1, n0] * len(grids), rates, negligible) if window else [None] * len(rates)
    weights = []
    for index, (edge, p1, p0) in enumerate(grids):
        rows, pmf1 = _kept_pmf(n1, p1, negligible, windows[2 * index])
        columns, pmf0 = _kept_pmf(n0, p0, negligible, windows[2 * index + 1])
        pmf1, pmf0 = pmf1[:, rows], pmf0[:, columns]
        tail = np.clip(1.0 - pmf1.sum(axis=1) * pmf0.sum(axis=1), 0.0, 1.0)
        weights.append((edge, rows, columns, pmf1, pmf0, tail))
    return weights


def _windows(sizes: list[int], rates: list[np.ndarray], negligible: float) -> list[slice | None]:
    """Per group (sizes[i] trials at rates[i]), counts holding all whose pmf may exceed negligible, or None."""
    # Why the window holds them. Let q = negligible / 4 and lo, hi the smallest and largest rate.
    # Binomials are stochastically ordered in the rate, so for any count k and any rate p >= lo,
    # every j <= k has pmf(j; p) <= P(X <= k; p) <= P(X <= k; lo); binom.ppf(q, n, lo) is the
    # smallest k with P(X <= k; lo) >= q, so every count below it has pmf < q at every rate. The
    # same holds mirrored (n - X is binomial at 1 - p) for counts above n - ppf(q, n, 1 - hi). The
    # factor 4 in q absorbs the relative rounding of the computed pmf, of 1 - hi and of the quantile
    # (each far below 1e-12 relative), so no count outside has a computed pmf over negligible. Two
    # counts of margin per side, and the guard in _kept_pmf, cover a quantile off by a count.
    # One call for every group: scipy's argument checks cost more than the quantiles themselves.
    bottoms = [float(rate.min()) for rate in rates]
    tops = [1.0 - float(rate.max()) for rate in rates]
    quantiles = stats.binom.ppf(negligible / 4, sizes * 2, bottoms + tops)
    windows = []
    for n, first, mirrored in zip(sizes, quantiles[: len(sizes)], quantiles[len(sizes) :], strict=True):
        finite = math.isfinite(first) and math.isfinite(mirrored)
        windows.append(slice(max(0, int(first) - 2), min(n + 1, n - int(mirrored) + 3)) if finite else None)
    return windows


def _kept_pmf(n: int, rates: np.ndarray, negligible: float, window: slice | None) -> tuple[slice, np.ndarray]:
    """_support of the pmfs of counts 0..n at these rates, and those pmfs: exact on the support.

    With a window (from _windows), the pmf is computed only for its counts; the rest of the (rates,
    n + 1) array is 0, so slicing it by the support gives the same floats in the same memory layout
    as computing every count (window None, the reference).
    """
    if window is None:
        pmf = stats.binom.pmf(np.arange(n + 1)[None, :], n, rates[:, None])
        return _support(pmf, negligible), pmf
    start, stop = window.start, window.stop
    pmf = np.zeros((rates.size, n + 1))
    pmf[:, start:stop] = stats.binom.pmf(np.arange(start, stop)[None, :], n, rates[:, None])
    kept = np.flatnonzero(pmf[:, start:stop].max(axis=0) > negligible) + start
    # Inside the window the pmfs are computed elementwise, the same floats; the support is exact
    # unless it reaches a window edge short of 0 or n (a quantile off by more than the margin), or
    # there is none at all: then every count is computed.
    if not kept.size or (kept[0] == start > 0) or (kept[-1] == stop - 1 < n):
        return _kept_pmf(n, rates, negligible, None)
    return slice(int(kept[0]), int(kept[-1]) + 1), pmf


def _shifted(kept: slice, start: int) -> slice:
    return slice(kept.start - start, kept.stop - start)


def _support(pmf: np.ndarray, negligible: float) -> slice:
    """The counts from the first to the last whose probability exceeds negligible at some rate."""
    kept = np.flatnonzero(pmf.max(axis=0) > negligible)
    return slice(int(kept[0]), int(kept[-1]) + 1) if kept.size else slice(0, pmf.shape[1])


def _table_bounds(compare: Compare, n1: int, n0: int, rows: tuple[int, int], columns: tuple[int, int]) -> Bounds:
    """z -> (low, high) for the tables with x1 in range(*rows) and x0 in range(*columns)."""
    # Not cached: the box follows the pooled count, and the Katz terms of a box cost about one
    # evaluation of its bounds, fewer than the full table's terms a cache by sizes would keep.
    x1 = np.arange(*rows)[:, None]
    x0 = np.arange(*columns)[None, :]
    if compare == "difference":
        return lambda z: newcombe_bounds(x1=x1, n1=n1, x0=x0, n0=n0, z=z)
    return _katz_terms(x1=x1, n1=n1, x0=x0, n0=n0)


def wilson_bounds(*, x: np.ndarray, n: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson 1927 score interval for every count in x, clipped to [0, 1] as statsmodels does."""
    p = np.asarray(x, dtype=np.float64) / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def newcombe_bounds(*, x1: np.ndarray, n1: int, x0: np.ndarray, n0: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe 1998 method 10 for arrays of counts (broadcast), clamped as newcombe_difference is."""
    # Newcombe 1998, method 10: square-and-add of the two Wilson intervals.
    p1 = np.asarray(x1, dtype=np.float64) / n1
    p0 = np.asarray(x0, dtype=np.float64) / n0
    low1, high1 = wilson_bounds(x=x1, n=n1, z=z)
    low0, high0 = wilson_bounds(x=x0, n=n0, z=z)
    difference = p1 - p0
    low = difference - np.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2)
    high = difference + np.sqrt((p0 - low0) ** 2 + (high1 - p1) ** 2)
    return np.maximum(-1.0, np.minimum(difference, low)), np.minimum(1.0, np.maximum(difference, high))


def katz_bounds(*, x1: np.ndarray, n1: int, x0: np.ndarray, n0: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Katz et al. 1978 log interval for arrays of counts (broadcast), zero cells as katz_ratio."""
    return _katz_terms(x1=x1, n1=n1, x0=x0, n0=n0)(z)


def _katz_terms(*, x1: np.ndarray, n1: int, x0: np.ndarray, n0: int) -> Bounds:
    """z -> Katz bounds, with everything that does not depend on z computed once."""
    x1, x0 = np.broadcast_arrays(np.asarray(x1, dtype=np.float64), np.asarray(x0, dtype=np.float64))
    # Haldane 1956 / Anscombe 1956, as katz_ratio: with any empty cell of the 2x2 table, bounds from
    # x + 0.5 events in n + 1 trials.
    corrected = (x1 == 0) | (x1 == n1) | (x0 == 0) | (x0 == n0)
    a1, a0 = x1 + 0.5 * corrected, x0 + 0.5 * corrected
    m1, m0 = n1 + 1.0 * corrected, n0 + 1.0 * corrected
    log_centre = np.log(a1 / m1) - np.log(a0 / m0)
    log_se = np.sqrt(1.0 / a1 - 1.0 / m1 + 1.0 / a0 - 1.0 / m0)
    # A zero rate cannot bound the ratio away from 0 (x1) or infinity (x0); with a rate of 1 the
    # corrected interval is widened to hold the observed ratio.
    no_floor, no_ceiling = x1 == 0, x0 == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.where(corrected & ~no_floor & ~no_ceiling, (x1 / n1) / (x0 / n0), np.nan)
    rate_one = ~np.isnan(observed)

    def bounds(z: float) -> tuple[np.ndarray, np.ndarray]:
        low = np.exp(log_centre - z * log_se)
        high = np.exp(log_centre + z * log_se)
        low = np.where(rate_one, np.fmin(low, observed), low)
        high = np.where(rate_one, np.fmax(high, observed), high)
        return np.where(no_floor, 0.0, low), np.where(no_ceiling, np.inf, high)

    return bounds
