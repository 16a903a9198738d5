"""Stratified bootstrap on a count tensor: multinomial redraws of each group x true-emotion row."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._results import Estimate
from ._validation import check_confidence, check_count_array

_BATCH_CELLS = 4_000_000


def bootstrap_counts(
    *,
    counts: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> Estimate:
    """Percentile bootstrap interval of statistic over resampled count tensors.

    counts has shape (G, T, O): group x true emotion x outcome. Each (g, t) row is redrawn as a
    multinomial with its own total and observed proportions (empty rows stay empty), which is the
    same as resampling images within each group x true-emotion stratum, at a cost independent of
    the number of images. statistic maps an integer (B, G, T, O) stack to shape (B,) (it may be
    called on several batches); the estimate is its value on counts[None]. NaN resampled
    statistics are ignored; all NaN gives a NaN interval.
    """
    # Hand-written: scipy.stats.bootstrap resamples observations, not multinomial count rows.
    counts = check_count_array(counts, name="counts", ndim=3)
    check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    estimate = float(_evaluate(statistic, counts[None])[0])

    totals = counts.sum(axis=2)
    outcomes = counts.shape[2]
    # Empty rows draw 0 items; any valid proportions will do, so give them uniform ones.
    proportions = np.where(totals[..., None] > 0, counts / np.maximum(totals, 1)[..., None], 1.0 / outcomes)
    # Batches bound memory at about _BATCH_CELLS counts however many resamples are asked for.
    batch = max(1, _BATCH_CELLS // max(counts.size, 1))
    values = np.concatenate(
        [
            _evaluate(statistic, rng.multinomial(totals, proportions, size=(size, *totals.shape)))
            for size in _batch_sizes(n_resamples, batch)
        ]
    )
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Estimate(estimate=estimate, low=math.nan, high=math.nan)
    # Efron & Tibshirani 1993, percentile interval.
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Estimate(estimate=estimate, low=float(low), high=float(high))


def _batch_sizes(total: int, batch: int) -> list[int]:
    return [min(batch, total - start) for start in range(0, total, batch)]


def _evaluate(statistic: Callable[[np.ndarray], np.ndarray], stack: np.ndarray) -> np.ndarray:
    values = np.asarray(statistic(stack), dtype=float)
    if values.shape != stack.shape[:1]:
        raise ValueError(f"statistic must return shape {stack.shape[:1]}, got {values.shape}")
    return values
