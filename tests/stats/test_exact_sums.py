"""The error sums of the exact calibration, grouped by cumulative sums, are the term-by-term sums.

Grouping changes the order of additions, so the oracle is agreement to rounding (rel 1e-12), not ==;
the oracle is the plain broadcast product summed over every table, written here independently.
"""

import numpy as np
import pytest

from fer_fairness.stats.exact import (
    _NUISANCE_SHARE,
    _cumulative,
    _edge_weights,
    _errors,
    _excluded_mass,
    _excluded_mass_reference,
    _in_box,
)

from .test_exact_speed import calibration_weights

REL, ABS = 1e-12, 1e-15


def term_by_term(pmf1, excluded, pmf0):
    """sum over i, j of pmf1[g, i] * excluded[i, j] * pmf0[g, j], every product formed."""
    return (pmf1[:, :, None] * excluded[None, :, :] * pmf0[:, None, :]).sum(axis=(1, 2))


def grouped(pmf1, excluded, pmf0):
    return _excluded_mass(pmf1, excluded, pmf0, _cumulative(pmf0))


def pmfs(rng, rates, counts):
    """Rows that sum to 1 with some exact zeros and some rare (1e-300 .. 1e-10) entries."""
    pmf = rng.random((rates, counts)) * (rng.random((rates, counts)) > 0.2)
    pmf[rng.random((rates, counts)) < 0.2] = 10 ** rng.uniform(-300, -10)
    pmf[:, rng.integers(counts)] += 1e-3  # no all-zero row
    return pmf / pmf.sum(axis=1, keepdims=True)


def row(rng, counts, kind):
    start, stop = sorted(rng.integers(0, counts + 1, 2))
    columns = np.arange(counts)
    if kind == "prefix":
        return columns < stop
    if kind == "suffix":
        return columns >= start
    if kind == "run":  # neither a prefix nor a suffix unless it happens to touch an end
        return (columns >= start) & (columns < stop)
    return rng.random(counts) < rng.random()  # scattered


def shape_of(excluded):
    """'prefix', 'suffix' or 'neither' for each row, read off directly."""
    kinds = []
    for values in excluded:
        true = np.flatnonzero(values)
        if not true.size or (true[0] == 0 and true[-1] == true.size - 1):
            kinds.append("prefix")
        elif true[-1] == values.size - 1 and true[-1] - true[0] + 1 == true.size:
            kinds.append("suffix")
        else:
            kinds.append("neither")
    return kinds


@pytest.mark.parametrize("seed", range(4))
def test_grouped_sums_equal_term_by_term_sums_for_any_excluded_set(seed):
    rng = np.random.default_rng(seed)
    seen = {"prefix": 0, "suffix": 0, "neither": 0}
    for _ in range(300):
        rates, rows, counts = int(rng.integers(1, 42)), int(rng.integers(1, 30)), int(rng.integers(1, 30))
        kinds = rng.choice(["prefix", "suffix", "run", "scattered"], size=rows)
        excluded = np.array([row(rng, counts, kind) for kind in kinds])
        pmf1, pmf0 = pmfs(rng, rates, rows), pmfs(rng, rates, counts)
        expected = term_by_term(pmf1, excluded, pmf0)
        np.testing.assert_allclose(grouped(pmf1, excluded, pmf0), expected, rtol=REL, atol=ABS)
        np.testing.assert_allclose(_excluded_mass_reference(pmf1, excluded, pmf0), expected, rtol=REL, atol=ABS)
        for kind in shape_of(excluded):
            seen[kind] += 1
    # Each path (head sums, tail sums, the term-by-term fallback) was exercised many times.
    assert min(seen.values()) > 500, seen


def test_rows_that_are_neither_prefix_nor_suffix_are_summed_in_full():
    # One row of each kind, with pmfs of distinct powers of two so that any term dropped, doubled
    # or taken from the wrong count changes the sum by far more than rounding.
    excluded = np.array(
        [
            [1, 1, 0, 0, 0],  # prefix
            [0, 0, 0, 1, 1],  # suffix
            [0, 1, 1, 0, 0],  # run inside
            [1, 0, 1, 0, 1],  # scattered
            [1, 0, 0, 0, 1],  # both ends
            [1, 1, 1, 1, 1],  # all
            [0, 0, 0, 0, 0],  # none
        ],
        dtype=bool,
    )
    pmf1 = 2.0 ** -np.arange(1, 8)[None, :]
    pmf0 = 2.0 ** -np.arange(8, 13)[None, :]
    expected = sum(
        pmf1[0, i] * pmf0[0, j] for i in range(excluded.shape[0]) for j in range(excluded.shape[1]) if excluded[i, j]
    )
    assert grouped(pmf1, excluded, pmf0)[0] == pytest.approx(expected, rel=REL, abs=0)
    for i in range(excluded.shape[0]):  # and row by row, so a wrong row cannot hide behind another
        alone = np.zeros_like(excluded)
        alone[i] = excluded[i]
        assert grouped(pmf1, alone, pmf0)[0] == pytest.approx(term_by_term(pmf1, alone, pmf0)[0], rel=REL, abs=0)


@pytest.mark.parametrize("seed", range(3))
def test_error_probabilities_agree_with_the_term_by_term_sums(seed):
    # The intervals' own excluded sets (difference and ratio, tiny groups, zero cells, rare rates):
    # every error _errors reports is the tail plus the term-by-term sum, maximised over grid rates.
    compared = 0
    for (compare, n1, n0, *_), weights in calibration_weights(200 + seed):
        if not weights:
            continue
        bounds, boxed = _in_box(compare, n1, n0, weights)
        for z in (0.5, 1.5, 2.5, 4.0, 8.0):
            low, high = bounds(z)
            expected = [
                float((term_by_term(pmf1, excluded, pmf0) + tail).max())
                for edge, rows, columns, pmf1, pmf0, tail in boxed
                for excluded in (low[rows, columns] >= edge, high[rows, columns] <= edge)
            ]
            assert list(_errors((low, high), boxed)) == pytest.approx(expected, rel=REL, abs=ABS)
            compared += len(expected)
    assert compared > 500


def test_newcombe_tables_never_need_the_term_by_term_sum(monkeypatch):
    # The saving rests on the Newcombe bounds being monotone in x0: every row of an excluded set is
    # a prefix or a suffix. Guard that on a benchmark-sized table at several levels.
    def refuse(*arguments):
        raise AssertionError("a Newcombe row was neither a prefix nor a suffix")

    monkeypatch.setattr("fer_fairness.stats.exact._excluded_mass_reference", refuse)
    budget = 0.05 / 2
    weights = _edge_weights("difference", 357, 351, 501, (-0.05, 0.05), _NUISANCE_SHARE * budget, 1e-9)
    bounds, boxed = _in_box("difference", 357, 351, weights)
    for z in (1.0, 2.0, 3.0, 4.0):
        assert all(error >= 0 for error in _errors(bounds(z), boxed))
