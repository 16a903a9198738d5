"""Clustered binary data: images of one person are not independent trials."""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats

from ._validation import check_confidence


def design_effect(*, x: np.ndarray, n: np.ndarray) -> float:
    """Design effect of a proportion estimated from clusters: robust variance over binomial variance.

    ``x[s]`` events among ``n[s]`` images of cluster (person) s. The cluster-robust variance of the
    ratio estimator sum(x) / sum(n) is K / (K - 1) * sum((x - p n)^2) / N^2 (Rao & Scott 1992); the
    result is that over p (1 - p) / N, never below 1 (images never count for more than themselves).
    1.0 when there are fewer than two non-empty clusters or the rate is 0 or 1 (no variation to
    measure: the score intervals then carry the uncertainty).
    """
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    used = n > 0
    x, n = x[used], n[used]
    k, total = len(n), float(n.sum())
    if k < 2:
        return 1.0
    p = float(x.sum()) / total
    if p <= 0.0 or p >= 1.0:
        return 1.0
    robust = k / (k - 1) * float(((x - p * n) ** 2).sum()) / total**2
    return max(1.0, robust / (p * (1 - p) / total))


def design_effect_of_sums(*, clusters: int, x: float, n: float, xx: float, xn: float, nn: float) -> float:
    """design_effect from sums over the K clusters with images (x = sum x_s, n = sum n_s, xx = sum x_s^2,
    xn = sum x_s n_s, nn = sum n_s^2): sum (x_s - p n_s)^2 = xx - 2 p xn + p^2 nn, so a caller holding
    these sums (counts.ClusterCounts.sums) needs no pass over the persons. Same value and edge cases."""
    if clusters < 2 or n <= 0:
        return 1.0
    p = x / n
    if p <= 0.0 or p >= 1.0:
        return 1.0
    squares = max(0.0, xx - 2 * p * xn + p * p * nn)  # >= 0 exactly; rounding may dip below near 0
    robust = clusters / (clusters - 1) * squares / n**2
    return max(1.0, robust / (p * (1 - p) / n))


def small_cluster_factor(*, clusters: int, confidence: float) -> float:
    """(t_{K-1} / z)^2 at the two-sided level: the extra width a robust variance from K clusters needs.

    Cluster-robust inference refers its statistic to t with K - 1 degrees of freedom, not the
    normal (Cameron & Miller 2015, sec. VI); dividing the effective counts by this factor does so
    for the score intervals. 1.0 for fewer than two clusters (nothing was estimated).
    """
    check_confidence(confidence)
    if clusters < 2:
        return 1.0
    return _t_over_z_squared(clusters, confidence)


# Every record asks for the factor of its groups at its level (18k scipy calls at 10k predictions,
# over a few hundred distinct cluster counts); it is a pure function of two numbers, so remember it.
@functools.lru_cache(maxsize=8192)
def _t_over_z_squared(clusters: float, confidence: float) -> float:
    tail = (1.0 - confidence) / 2
    return float((stats.t.isf(tail, clusters - 1) / stats.norm.isf(tail)) ** 2)
