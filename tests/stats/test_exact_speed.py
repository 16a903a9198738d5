"""The box and window shortcuts of the exact calibration give the same floats as the full computation.

They only skip work whose result is discarded, so every comparison here is exact (==), never approx;
the error sums' own rearrangement (cumulative sums) is tested to rounding in test_exact_sums.py.
"""

import numpy as np
import pytest
from scipy import stats

from fer_fairness.stats.exact import (
    _errors,
    _in_box,
    _kept_pmf,
    _table_bounds,
    _weights_at,
    _windows,
    katz_bounds,
    newcombe_bounds,
)

VECTOR = {"difference": newcombe_bounds, "ratio": katz_bounds}


def full_bounds(compare, n1, n0, z):
    """The interval of every table of these sizes, from the public vectorised functions."""
    return VECTOR[compare](x1=np.arange(n1 + 1)[:, None], n1=n1, x0=np.arange(n0 + 1)[None, :], n0=n0, z=z)


def size(rng):
    """Tiny, small or benchmark-sized groups."""
    return int(rng.choice([rng.integers(1, 6), rng.integers(1, 60), rng.integers(1, 450)]))


def rate(rng):
    return float(rng.choice([0.0, 1.0, 10 ** rng.uniform(-5, 0), rng.random()]))


def calibration_input(rng):
    """(compare, n1, n0, pooled, edges, confidence) as _calibrated_z receives them."""
    compare = str(rng.choice(["difference", "ratio"]))
    n1, n0 = size(rng), size(rng)
    pooled = round(rate(rng) * (n1 + n0))
    if compare == "difference":
        edge = float(rng.choice([0.01, 0.05, 0.1, 0.2, 0.5, 0.9]))
        edges = (-edge, edge) if rng.random() < 0.7 else (float(rng.uniform(-0.9, 0.9)),)
    else:
        edge = float(rng.choice([1.05, 1.25, 1.5, 2.0, 5.0, 50.0]))
        edges = (1 / edge, edge) if rng.random() < 0.7 else (float(10 ** rng.uniform(-2, 2)),)
    confidence = float(rng.choice([0.8, 0.9, 0.95, 0.99, 1 - 0.05 / 300, 1 - 1e-9, rng.uniform(0.5, 0.9999)]))
    return compare, n1, n0, pooled, edges, confidence


def calibration_weights(seed: int, count: int = 60, *, window: bool = True):
    """``count`` random calibration inputs with the edge weights the level search would enumerate."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        compare, n1, n0, pooled, edges, confidence = calibration_input(rng)
        weights, _ = _weights_at(compare, n1, n0, pooled, edges, confidence, window=window)
        yield (compare, n1, n0, pooled, edges, confidence), weights


@pytest.mark.parametrize("seed", range(4))
def test_pmf_window_keeps_the_support_and_pmfs_of_every_count(seed):
    rng = np.random.default_rng(seed)
    for _ in range(150):
        n = size(rng)
        low, high = sorted((rate(rng), rate(rng)))
        rates = np.linspace(low, high, 41)
        negligible = 10 ** rng.uniform(-20, -6)
        full = stats.binom.pmf(np.arange(n + 1)[None, :], n, rates[:, None])
        kept = np.flatnonzero(full.max(axis=0) > negligible)
        support, pmf = _kept_pmf(n, rates, negligible, _windows([n], [rates], negligible)[0])
        assert support == slice(int(kept[0]), int(kept[-1]) + 1)
        # Same floats in the same layout: the error sums see the very arrays they saw before.
        assert np.array_equal(pmf[:, support], full[:, support])
        assert pmf.shape == full.shape and pmf[:, support].strides == full[:, support].strides


def test_pmf_window_skips_counts_that_cannot_matter():
    # Guards the test above against a window that always falls back to every count.
    n, rates, negligible = 400, np.linspace(0.01, 0.05, 41), 1e-12
    window = _windows([n], [rates], negligible)[0]
    support, pmf = _kept_pmf(n, rates, negligible, window)
    full = stats.binom.pmf(np.arange(n + 1)[None, :], n, rates[:, None])
    assert support.stop < 60
    assert np.all(pmf[:, 150:] == 0) and np.all(full[:, 150] > 0)


@pytest.mark.parametrize("compare", ["difference", "ratio"])
def test_bounds_on_a_box_are_those_of_the_full_table(compare):
    rng = np.random.default_rng(11)
    for _ in range(200):
        n1, n0 = size(rng), size(rng)
        rows = tuple(sorted(rng.integers(0, n1 + 2, 2)))
        columns = tuple(sorted(rng.integers(0, n0 + 2, 2)))
        z = float(rng.choice([0.5, 1.96, 3.7, 8.0, rng.uniform(0, 9)]))
        boxed = _table_bounds(compare, n1, n0, rows, columns)(z)
        for box, whole in zip(boxed, full_bounds(compare, n1, n0, z), strict=True):
            assert np.array_equal(box, whole[slice(*rows), slice(*columns)], equal_nan=True)


@pytest.mark.parametrize("seed", range(3))
def test_error_probabilities_are_those_of_the_full_computation(seed):
    compared = 0
    for (compare, n1, n0, pooled, edges, confidence), fast in calibration_weights(100 + seed):
        every_count, _ = _weights_at(compare, n1, n0, pooled, edges, confidence, window=False)
        for (*scalars, pmf1, pmf0, tail), (*fast_scalars, fast1, fast0, fast_tail) in zip(
            every_count, fast, strict=True
        ):
            assert scalars == fast_scalars
            assert np.array_equal(pmf1, fast1) and np.array_equal(pmf0, fast0) and np.array_equal(tail, fast_tail)
            assert (pmf1.strides, pmf0.strides) == (fast1.strides, fast0.strides)
        if not fast:
            continue
        bounds, boxed = _in_box(compare, n1, n0, fast)
        for z in (1.0, 2.5, 4.0, 8.0):
            expected = list(_errors(full_bounds(compare, n1, n0, z), every_count))
            assert list(_errors(bounds(z), boxed)) == expected
            compared += len(expected)
    assert compared > 500
