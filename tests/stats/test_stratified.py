import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from statsmodels.stats.contingency_tables import StratifiedTable

from fer_fairness.stats import cmh_association_test, mantel_haenszel_difference

from ._strategies import PROPERTY

# --- generalized CMH ----------------------------------------------------------------------------


@PROPERTY
@given(table=hnp.arrays(np.int64, st.tuples(st.integers(1, 6), st.just(2), st.just(2)), elements=st.integers(0, 30)))
def test_cmh_with_two_groups_matches_statsmodels(table):
    result = cmh_association_test(table=table)
    usable = [s for s in table if s.sum() >= 2 and s.sum(0).min() > 0 and s.sum(1).min() > 0]
    if not usable:
        assert (result.statistic, result.p_value) == (0.0, 1.0)
        return
    # statsmodels wants (2, 2, K) with groups as rows.
    reference = StratifiedTable(np.stack(usable, axis=-1).astype(float)).test_null_odds(correction=False)
    assert result.method == "cmh"
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-12)


@PROPERTY
@given(table=hnp.arrays(np.int64, st.tuples(st.integers(2, 5), st.just(2)), elements=st.integers(1, 40)))
def test_cmh_with_one_stratum_is_scaled_pearson(table):
    # With a single stratum, Q_GMH = (N - 1) / N * Pearson X2 (Landis, Heyman & Koch 1978).
    n = table.sum()
    pearson = stats.chi2_contingency(table, correction=False)
    result = cmh_association_test(table=table[None])
    assert result.statistic == pytest.approx((n - 1) / n * pearson.statistic, rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(
        stats.chi2.sf((n - 1) / n * pearson.statistic, table.shape[0] - 1), rel=1e-9, abs=1e-12
    )


def test_cmh_skips_unusable_strata_and_uses_the_rank_for_dof():
    usable = np.array([[[10, 5], [4, 9], [7, 7]]])
    noise = np.array([[[3, 0], [2, 0], [0, 0]], [[1, 0], [0, 0], [0, 0]], [[0, 0], [0, 4], [0, 0]]])
    assert cmh_association_test(table=np.concatenate([usable, noise])) == cmh_association_test(table=usable)
    # Groups {0, 1} and {2, 3} never share a stratum: only 2 comparisons are identifiable.
    split = np.array([[[10, 5], [4, 9], [0, 0], [0, 0]], [[0, 0], [0, 0], [6, 6], [9, 2]]])
    halves = [cmh_association_test(table=split[k : k + 1, 2 * k : 2 * k + 2]) for k in (0, 1)]
    combined = cmh_association_test(table=split)
    assert combined.statistic == pytest.approx(sum(h.statistic for h in halves))
    assert combined.p_value == pytest.approx(stats.chi2.sf(combined.statistic, 2))


def test_cmh_nothing_to_compare():
    for table in (
        np.zeros((3, 4, 2), int),
        np.array([[[5, 0], [6, 0]]]),
        np.array([[[5, 2], [0, 0]]]),
    ):
        assert cmh_association_test(table=table).p_value == 1.0


def test_cmh_p_values_are_uniform_under_the_null():
    # Strata differ in difficulty and group mix, but within a stratum every group has the same rate.
    rng = np.random.default_rng(1234)
    rates = np.array([0.9, 0.6, 0.35, 0.75])
    sizes = np.array([[30, 20, 12], [15, 25, 30], [20, 20, 8], [40, 10, 25]])
    n_sims = 1000
    correct = rng.binomial(sizes[None], rates[None, :, None], size=(n_sims, *sizes.shape))
    p_values = np.array([cmh_association_test(table=np.stack([c, sizes - c], axis=-1)).p_value for c in correct])
    se = math.sqrt(0.05 * 0.95 / n_sims)
    assert abs(np.mean(p_values < 0.05) - 0.05) < 4 * se
    assert stats.kstest(p_values, "uniform").pvalue > 1e-4


def test_cmh_detects_a_real_group_effect():
    rng = np.random.default_rng(1234)
    sizes = np.array([[40, 40, 40]] * 4)
    rates = np.array([0.9, 0.6, 0.35, 0.75])[:, None] + np.array([0.0, 0.0, -0.2])
    correct = rng.binomial(sizes, rates)
    assert cmh_association_test(table=np.stack([correct, sizes - correct], axis=-1)).p_value < 0.01


# --- Mantel-Haenszel risk difference ------------------------------------------------------------


@PROPERTY
@given(
    x1=st.integers(0, 60),
    extra1=st.integers(1, 60),
    x0=st.integers(0, 60),
    extra0=st.integers(1, 60),
)
def test_mh_difference_with_one_stratum_is_the_plain_wald_difference(x1, extra1, x0, extra0):
    n1, n0 = x1 + extra1, x0 + extra0
    p1, p0 = x1 / n1, x0 / n0
    result = mantel_haenszel_difference(
        x1=np.array([x1]), n1=np.array([n1]), x0=np.array([x0]), n0=np.array([n0]), confidence=0.95
    )
    variance = p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0
    if variance == 0:  # both rates 0 or 1: the variance of the table with 0.5 added to every cell
        q1, q0 = (x1 + 0.5) / (n1 + 1), (x0 + 0.5) / (n0 + 1)
        variance = q1 * (1 - q1) / (n1 + 1) + q0 * (1 - q0) / (n0 + 1)
    half = stats.norm.ppf(0.975) * math.sqrt(variance)
    assert result.estimate == pytest.approx(p1 - p0, abs=1e-12)
    assert result.low == pytest.approx(max(-1.0, p1 - p0 - half), abs=1e-9)
    assert result.high == pytest.approx(min(1.0, p1 - p0 + half), abs=1e-9)


def test_mh_difference_is_the_cochran_weighted_mean_and_ignores_empty_strata():
    x1, n1 = np.array([8, 30, 5, 3]), np.array([10, 50, 20, 4])
    x0, n0 = np.array([6, 20, 2, 0]), np.array([12, 45, 25, 0])
    weights = (n1 * n0 / (n1 + n0))[:3]
    expected = np.sum(weights * (x1 / n1 - x0 / np.maximum(n0, 1))[:3]) / weights.sum()
    full = mantel_haenszel_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=0.95)
    trimmed = mantel_haenszel_difference(x1=x1[:3], n1=n1[:3], x0=x0[:3], n0=n0[:3], confidence=0.95)
    assert full.estimate == pytest.approx(expected)
    assert full == trimmed
    empty = mantel_haenszel_difference(x1=x1 * 0, n1=n1 * 0, x0=x0, n0=n0, confidence=0.95)
    assert math.isnan(empty.estimate) and (empty.low, empty.high) == (-1.0, 1.0)


def test_mh_difference_covers_the_common_difference():
    rng = np.random.default_rng(1234)
    n1, n0 = np.array([30, 20, 50, 12]), np.array([40, 25, 10, 30])
    p0 = np.array([0.3, 0.5, 0.6, 0.7])
    p1 = p0 + 0.1
    n_sims = 3000
    x1 = rng.binomial(n1, p1, size=(n_sims, 4))
    x0 = rng.binomial(n0, p0, size=(n_sims, 4))
    covered = [
        mantel_haenszel_difference(x1=a, n1=n1, x0=b, n0=n0, confidence=0.95).interval.contains(0.1)
        for a, b in zip(x1, x0, strict=True)
    ]
    # 4 standard errors of the Monte Carlo estimate, plus 0.01 for the Wald approximation itself.
    assert abs(np.mean(covered) - 0.95) < 4 * math.sqrt(0.95 * 0.05 / n_sims) + 0.01


@PROPERTY
@given(data=st.data(), strata=st.integers(1, 5))
def test_mh_difference_range_and_group_swap(data, strata):
    n1 = np.array(data.draw(st.lists(st.integers(0, 40), min_size=strata, max_size=strata)))
    n0 = np.array(data.draw(st.lists(st.integers(0, 40), min_size=strata, max_size=strata)))
    x1 = np.array([data.draw(st.integers(0, n)) for n in n1])
    x0 = np.array([data.draw(st.integers(0, n)) for n in n0])
    forward = mantel_haenszel_difference(x1=x1, n1=n1, x0=x0, n0=n0, confidence=0.9)
    backward = mantel_haenszel_difference(x1=x0, n1=n0, x0=x1, n0=n1, confidence=0.9)
    assert -1.0 <= forward.low <= forward.high <= 1.0
    if not math.isnan(forward.estimate):
        assert forward.low <= forward.estimate <= forward.high
        assert backward.estimate == pytest.approx(-forward.estimate, abs=1e-12)
    assert backward.low == pytest.approx(-forward.high, abs=1e-12)
    assert backward.high == pytest.approx(-forward.low, abs=1e-12)


def test_mh_difference_rejects_mismatched_arrays():
    with pytest.raises(ValueError):
        mantel_haenszel_difference(
            x1=np.array([1, 2]),
            n1=np.array([3]),
            x0=np.array([1]),
            n0=np.array([3]),
            confidence=0.95,
        )
    with pytest.raises(ValueError):
        mantel_haenszel_difference(
            x1=np.array([4]), n1=np.array([3]), x0=np.array([1]), n0=np.array([3]), confidence=0.95
        )
