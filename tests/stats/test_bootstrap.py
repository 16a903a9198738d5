import math

import numpy as np
import pytest

from fer_fairness.stats import bootstrap_counts

# counts[group, true emotion, outcome]; outcome 0 is "correct".
COUNTS = np.array(
    [
        [[7, 2, 1], [4, 3, 0], [5, 1, 2]],
        [[5, 4, 2], [2, 2, 1], [6, 0, 0]],
    ]
)


def macro_recall_gap(stack: np.ndarray) -> np.ndarray:
    """Mean over true emotions of recall(group 1) - recall(group 0); nan where a row is empty."""
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = stack[..., 0] / stack.sum(axis=-1)  # (B, G, T)
    return (recall[:, 1] - recall[:, 0]).mean(axis=-1)


def row_level_bootstrap(counts: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Resample images (rows) with replacement within each group x true-emotion stratum."""
    out = np.zeros((n_resamples, *counts.shape))
    for g, t in np.ndindex(counts.shape[:2]):
        rows = np.repeat(np.arange(counts.shape[2]), counts[g, t])  # one outcome label per image
        if rows.size == 0:
            continue
        drawn = rows[rng.integers(0, rows.size, size=(n_resamples, rows.size))]
        out[:, g, t] = np.stack([(drawn == o).sum(axis=1) for o in range(counts.shape[2])], axis=1)
    return out


def test_percentile_interval_agrees_with_a_row_level_stratified_bootstrap():
    n_resamples, confidence = 20_000, 0.9
    result = bootstrap_counts(
        counts=COUNTS,
        statistic=macro_recall_gap,
        n_resamples=n_resamples,
        confidence=confidence,
        rng=np.random.default_rng(1234),
    )
    oracle = macro_recall_gap(row_level_bootstrap(COUNTS, n_resamples, np.random.default_rng(4321)))
    levels = [0.05, 0.95]
    low, high = np.quantile(oracle, levels)
    # Monte Carlo error of each endpoint, from the spread of endpoints over 20 sub-batches.
    batches = np.quantile(oracle.reshape(20, -1), levels, axis=1)
    se = batches.std(axis=1, ddof=1) / math.sqrt(20)
    tolerance = 4 * math.sqrt(2) * se + 1e-9
    assert result.estimate == pytest.approx(macro_recall_gap(COUNTS[None].astype(float))[0])
    assert abs(result.low - low) <= tolerance[0]
    assert abs(result.high - high) <= tolerance[1]
    assert result.high - result.low > 0.2  # a real spread, not a degenerate interval


def test_each_row_is_a_multinomial_of_its_own_total():
    counts = np.array([[[30, 10, 0, 5], [0, 0, 0, 0]], [[1, 0, 0, 0], [12, 12, 12, 4]]])
    captured = []

    def keep(stack):
        captured.append(stack)
        return stack[:, 0, 0, 0]

    n_resamples = 20_000
    bootstrap_counts(
        counts=counts,
        statistic=keep,
        n_resamples=n_resamples,
        confidence=0.95,
        rng=np.random.default_rng(1234),
    )
    resampled = captured[-1]
    assert resampled.shape == (n_resamples, *counts.shape)
    assert np.all(resampled.sum(axis=-1) == counts.sum(axis=-1))  # totals never move
    assert np.all(resampled[:, 0, 1] == 0) and np.all(resampled[:, 1, 0] == [1, 0, 0, 0])
    totals = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    mean, var = totals * p, totals * p * (1 - p)
    mean_se = np.sqrt(var / n_resamples)
    assert np.all(np.abs(resampled.mean(axis=0) - mean) <= 4 * mean_se + 1e-12)
    # Sample variance of n draws has se ~ var * sqrt(2 / n) for near-normal counts; allow 6 of them.
    assert np.allclose(resampled.var(axis=0), var, rtol=6 * math.sqrt(2 / n_resamples), atol=1e-12)
    # Outcomes of one row are negatively correlated as a multinomial: cov = -n p_i p_j.
    cov = np.cov(resampled[:, 0, 0, 0], resampled[:, 0, 0, 1])[0, 1]
    assert cov == pytest.approx(-45 * (30 / 45) * (10 / 45), rel=0.1)


def test_nan_statistics_are_ignored_and_all_nan_gives_nan_interval():
    rng = np.random.default_rng(1234)

    def sometimes_nan(stack):
        values = stack[:, 0, 0, 0].astype(float)
        values[::2] = np.nan
        return values

    result = bootstrap_counts(counts=COUNTS, statistic=sometimes_nan, n_resamples=1000, confidence=0.9, rng=rng)
    assert math.isfinite(result.low) and math.isfinite(result.high)
    result = bootstrap_counts(
        counts=COUNTS,
        statistic=lambda stack: np.full(stack.shape[0], np.nan),
        n_resamples=100,
        confidence=0.9,
        rng=rng,
    )
    assert math.isnan(result.low) and math.isnan(result.high)


def test_cost_does_not_depend_on_the_number_of_images():
    huge = np.array([[[10**9, 3 * 10**8]], [[5 * 10**8, 5 * 10**8]]])
    result = bootstrap_counts(
        counts=huge,
        statistic=macro_recall_gap,
        n_resamples=2000,
        confidence=0.95,
        rng=np.random.default_rng(1234),
    )
    assert result.estimate == pytest.approx(0.5 - 1 / 1.3)
    assert result.high - result.low < 1e-3


def test_seeded_and_validated():
    kwargs = dict(counts=COUNTS, statistic=macro_recall_gap, n_resamples=200, confidence=0.9)
    assert bootstrap_counts(**kwargs, rng=np.random.default_rng(5)) == bootstrap_counts(
        **kwargs, rng=np.random.default_rng(5)
    )
    with pytest.raises(ValueError):
        bootstrap_counts(**{**kwargs, "counts": COUNTS[0]}, rng=np.random.default_rng(5))
    with pytest.raises(ValueError):
        bootstrap_counts(**{**kwargs, "statistic": lambda s: s.sum(axis=(2, 3))}, rng=np.random.default_rng(5))
