import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from fer_fairness.stats import association_test, binomial_floor_test, two_proportion_test

from ._strategies import PROPERTY, counts

# --- two proportions ----------------------------------------------------------------------------


def hand_pooled_z(x1, n1, x0, n0) -> tuple[float, float]:
    pooled = (x1 + x0) / (n1 + n0)
    z = (x1 / n1 - x0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return z, 2 * stats.norm.sf(abs(z))


def test_two_proportion_known_answer_is_a_z_test():
    result = two_proportion_test(x1=27, n1=76, x0=12, n0=55)
    z, p = hand_pooled_z(27, 76, 12, 55)
    assert result.method == "z"
    assert result.statistic == pytest.approx(z)
    assert result.p_value == pytest.approx(p)
    assert round(result.p_value, 3) == 0.090


@PROPERTY
@given(g1=counts(min_n=1), g0=counts(min_n=1))
def test_two_proportion_chooses_z_or_fisher_by_expected_counts(g1, g0):
    (x1, n1), (x0, n0) = g1, g0
    result = two_proportion_test(x1=x1, n1=n1, x0=x0, n0=n0)
    successes, total = x1 + x0, n1 + n0
    if successes in (0, total):
        assert (result.statistic, result.p_value) == (0.0, 1.0)
        return
    smallest_expected = min(n1, n0) * min(successes, total - successes) / total
    if smallest_expected < 5:
        fisher = stats.fisher_exact([[x1, n1 - x1], [x0, n0 - x0]])
        assert result.method == "fisher"
        assert result.p_value == pytest.approx(fisher.pvalue, rel=1e-9)
    else:
        z, p = hand_pooled_z(x1, n1, x0, n0)
        assert result.method == "z"
        assert result.statistic == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert result.p_value == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert 0.0 <= result.p_value <= 1.0


def test_two_proportion_small_counts_use_fisher():
    # Expected count of successes in group 0 is 4 * 8 / 20 = 1.6 < 5.
    result = two_proportion_test(x1=7, n1=16, x0=1, n0=4)
    assert result.method == "fisher"
    assert result.p_value == pytest.approx(stats.fisher_exact([[7, 9], [1, 3]]).pvalue)


@pytest.mark.parametrize(("x1", "n1", "x0", "n0"), [(5, 5, 9, 9), (0, 5, 0, 9), (0, 0, 3, 9), (0, 0, 0, 0)])
def test_two_proportion_degenerate_tables(x1, n1, x0, n0):
    result = two_proportion_test(x1=x1, n1=n1, x0=x0, n0=n0)
    assert (result.statistic, result.p_value) == (0.0, 1.0)


# --- binomial floor -----------------------------------------------------------------------------


@PROPERTY
@given(count=counts(max_n=120, min_n=1), minimum=st.floats(0.01, 0.99))
def test_binomial_floor_is_the_lower_binomial_tail(count, minimum):
    successes, n = count
    tail = sum(math.comb(n, k) * minimum**k * (1 - minimum) ** (n - k) for k in range(successes + 1))
    result = binomial_floor_test(successes=successes, n=n, minimum=minimum)
    assert result.method == "binomial"
    assert result.statistic == pytest.approx(successes / n)
    assert result.p_value == pytest.approx(min(tail, 1.0), rel=1e-7, abs=1e-300)


def test_binomial_floor_direction_and_empty_group():
    assert binomial_floor_test(successes=60, n=100, minimum=0.8).p_value < 1e-5
    assert binomial_floor_test(successes=95, n=100, minimum=0.8).p_value > 0.99
    empty = binomial_floor_test(successes=0, n=0, minimum=0.8)
    assert empty.p_value == 1.0 and math.isnan(empty.statistic)
    with pytest.raises(ValueError):
        binomial_floor_test(successes=1, n=2, minimum=1.5)


# --- association (G x 2) ------------------------------------------------------------------------


def hand_pearson(table: np.ndarray) -> float:
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def exact_chi2_p_value(table: np.ndarray) -> float:
    """P(X2 >= observed) over all G x 2 tables with the observed margins.

    Each table's probability is multivariate hypergeometric (the correct counts drawn from groups).
    """
    rows = table.sum(1)
    correct = int(table[:, 0].sum())
    observed = hand_pearson(table)
    p = 0.0
    for first in itertools.product(*(range(r + 1) for r in rows)):
        if sum(first) != correct:
            continue
        candidate = np.column_stack([first, rows - np.array(first)])
        if hand_pearson(candidate) >= observed - 1e-9:
            p += stats.multivariate_hypergeom.pmf(first, m=rows, n=correct)
    return p


def test_association_large_counts_is_pearson_chi_square():
    table = np.array([[80, 20], [60, 40], [70, 25]])
    result = association_test(table=table, rng=np.random.default_rng(1234))
    assert result.method == "chi2"
    assert result.statistic == pytest.approx(hand_pearson(table))
    assert result.p_value == pytest.approx(stats.chi2.sf(hand_pearson(table), df=2))


@pytest.mark.parametrize(
    "table",
    [
        np.array([[6, 1], [3, 4], [2, 5]]),
        np.array([[9, 0], [4, 3]]),
        np.array([[2, 3], [8, 1], [5, 5]]),
    ],
)
def test_association_small_counts_monte_carlo_matches_exact_enumeration(table):
    n_resamples = 20_000
    result = association_test(table=table, rng=np.random.default_rng(1234), n_resamples=n_resamples)
    exact = exact_chi2_p_value(table)
    assert result.method == "chi2-monte-carlo"
    assert result.statistic == pytest.approx(hand_pearson(table))
    mc_error = math.sqrt(exact * (1 - exact) / n_resamples) + 1 / n_resamples
    assert abs(result.p_value - exact) < 5 * mc_error


def test_association_monte_carlo_p_value_is_never_zero_and_is_seeded():
    table = np.array([[20, 0], [0, 4]])
    first = association_test(table=table, rng=np.random.default_rng(7), n_resamples=999)
    again = association_test(table=table, rng=np.random.default_rng(7), n_resamples=999)
    assert first == again
    assert first.p_value >= 1 / 1000


def test_association_drops_empty_rows_and_handles_degenerate_tables():
    rng = np.random.default_rng(1234)
    with_empty = association_test(table=np.array([[80, 20], [0, 0], [60, 40]]), rng=rng)
    without = association_test(table=np.array([[80, 20], [60, 40]]), rng=rng)
    assert with_empty == without
    for table in ([[5, 0], [7, 0]], [[5, 3], [0, 0]], [[0, 0], [0, 0]]):
        result = association_test(table=np.array(table), rng=rng)
        assert (result.statistic, result.p_value) == (0.0, 1.0)


def test_association_rejects_bad_tables():
    rng = np.random.default_rng(1234)
    with pytest.raises(ValueError):
        association_test(table=np.array([[1, 2, 3], [4, 5, 6]]), rng=rng)
    with pytest.raises(ValueError):
        association_test(table=np.array([[1, -2], [4, 5]]), rng=rng)
