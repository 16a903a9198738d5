"""Significance tests: two groups, an accuracy floor, and omnibus group-vs-correctness tests."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from ._results import Estimate, TestResult
from ._validation import check_confidence, check_count, check_count_array

# Below this expected cell count the chi-square and normal approximations are not trusted
# (Cochran 1954).
MIN_EXPECTED = 5.0


def two_proportion_test(*, x1: int, n1: int, x0: int, n0: int) -> TestResult:
    """Two-sided test of p1 == p0.

    Pooled z-test ("z"); Fisher's exact test ("fisher", statistic = sample odds ratio) when any
    expected cell count of the 2x2 table is below 5. A table with a zero margin carries no
    evidence: p 1.0, statistic 0.
    """
    check_count(successes=x1, n=n1, names=("x1", "n1"))
    check_count(successes=x0, n=n0, names=("x0", "n0"))
    table = np.array([[x1, n1 - x1], [x0, n0 - x0]])
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    if rows.min() == 0 or cols.min() == 0:
        return TestResult(statistic=0.0, p_value=1.0, method="fisher")
    expected = np.outer(rows, cols) / table.sum()
    if expected.min() < MIN_EXPECTED:
        # Fisher 1935 exact conditional test; two-sided by summing tables no more probable.
        result = stats.fisher_exact(table, alternative="two-sided")
        return TestResult(statistic=float(result.statistic), p_value=float(result.pvalue), method="fisher")
    # Pooled two-proportion z-test (equivalent to Pearson's chi-square without correction).
    z, p_value = proportions_ztest([x1, x0], [n1, n0], value=0, alternative="two-sided")
    return TestResult(statistic=float(z), p_value=float(p_value), method="z")


def binomial_floor_test(*, successes: int, n: int, minimum: float) -> TestResult:
    """Exact one-sided binomial test of H0: p >= minimum against p < minimum.

    statistic is the observed proportion (nan when n == 0, where p is 1.0).
    """
    check_count(successes=successes, n=n)
    if not 0.0 <= minimum <= 1.0:
        raise ValueError(f"minimum must be in [0, 1], got {minimum!r}")
    if n == 0:
        return TestResult(statistic=math.nan, p_value=1.0, method="binomial")
    # Exact binomial test: p = P(X <= successes | n, minimum).
    result = stats.binomtest(successes, n, p=minimum, alternative="less")
    return TestResult(statistic=successes / n, p_value=float(result.pvalue), method="binomial")


def association_test(*, table: np.ndarray, rng: np.random.Generator, n_resamples: int = 10_000) -> TestResult:
    """Omnibus test of group vs correctness on a (G, 2) table of (correct, wrong) counts.

    Pearson chi-square ("chi2"); when any expected count is below 5, a Monte Carlo test over
    tables with the same margins ("chi2-monte-carlo", p = (1 + #{X2* >= X2}) / (1 + n_resamples)).
    Empty rows are dropped; fewer than two rows or a zero column gives p 1.0, statistic 0.
    """
    table = check_count_array(table, name="table", ndim=2)
    if table.shape[1] != 2:
        raise ValueError(f"table must have shape (G, 2), got {table.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    table = table[table.sum(axis=1) > 0]
    if table.shape[0] < 2 or table.sum(axis=0).min() == 0:
        return TestResult(statistic=0.0, p_value=1.0, method="chi2")
    if stats.contingency.expected_freq(table).min() < MIN_EXPECTED:
        # Monte Carlo exact test (Patefield 1981 tables via scipy.stats.random_table).
        mc = stats.MonteCarloMethod(n_resamples=n_resamples, rng=rng)
        result = stats.chi2_contingency(table, correction=False, method=mc)
        return TestResult(
            statistic=float(result.statistic),
            p_value=float(result.pvalue),
            method="chi2-monte-carlo",
        )
    result = stats.chi2_contingency(table, correction=False)
    return TestResult(statistic=float(result.statistic), p_value=float(result.pvalue), method="chi2")


def cmh_association_test(*, table: np.ndarray) -> TestResult:
    """Generalized Cochran-Mantel-Haenszel general-association test, stratified.

    table has shape (K, G, 2): strata (true emotion) x groups x (correct, wrong). Strata with
    fewer than 2 observations, fewer than 2 groups present, or a zero column are skipped. The
    degrees of freedom are the rank of the pooled covariance: G - 1 when every group is linked
    through shared strata. Nothing left to compare gives p 1.0, statistic 0.
    """
    # Landis, Heyman & Koch 1978, Q_GMH; hand-written: statsmodels' StratifiedTable is 2x2xK only.
    table = check_count_array(table, name="table", ndim=3)
    if table.shape[2] != 2:
        raise ValueError(f"table must have shape (K, G, 2), got {table.shape}")
    rows = table.sum(axis=2).astype(float)  # (K, G) group sizes per stratum
    correct = table[:, :, 0].sum(axis=1).astype(float)  # (K,)
    total = rows.sum(axis=1)
    wrong = total - correct
    used = (total >= 2) & (correct > 0) & (wrong > 0) & ((rows > 0).sum(axis=1) >= 2)
    if not used.any():
        return TestResult(statistic=0.0, p_value=1.0, method="cmh")
    rows, correct, wrong, total = rows[used], correct[used], wrong[used], total[used]
    observed = table[used, :, 0]
    deviation = (observed - rows * (correct / total)[:, None]).sum(axis=0)
    # Hypergeometric covariance of the correct counts, summed over strata.
    scale = correct * wrong / (total**2 * (total - 1))
    covariance = np.diag((scale * total) @ rows) - (rows.T * scale) @ rows
    # The G-vector has a singular covariance; any generalized inverse gives the same quadratic form.
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    keep = eigenvalues > 1e-9 * eigenvalues.max()
    projected = eigenvectors[:, keep].T @ deviation
    statistic = float(np.sum(projected**2 / eigenvalues[keep]))
    dof = int(keep.sum())
    p_value = float(stats.chi2.sf(statistic, dof))
    return TestResult(statistic=statistic, p_value=p_value, method="cmh")


def mantel_haenszel_difference(
    *, x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray, confidence: float
) -> Estimate:
    """Mantel-Haenszel common risk difference p1 - p0 over strata, with a Wald interval.

    Strata where either group is empty contribute nothing; none left gives nan in [-1, 1]. Counts
    may be real-valued (effective counts of clustered data). When the Sato variance is 0 (every
    stratum all-correct or all-wrong in both groups) the variance is taken from the strata with 0.5
    added to every cell, and the interval stays centred on the estimate: a zero-width interval
    would claim certainty that a handful of faces cannot give.
    """
    # Hand-written: statsmodels' StratifiedTable pools odds and risk ratios, not differences.
    check_confidence(confidence)
    named = {"x1": x1, "n1": n1, "x0": x0, "n0": n0}
    arrays = [_real_counts(a, name=name) for name, a in named.items()]
    if len({a.shape for a in arrays}) != 1:
        shapes = [a.shape for a in arrays]
        raise ValueError(f"x1, n1, x0, n0 must have one shape, got {shapes}")
    x1, n1, x0, n0 = arrays
    if np.any(x1 > n1) or np.any(x0 > n0):
        raise ValueError("x1 and x0 must not exceed n1 and n0 in any stratum")
    used = (n1 > 0) & (n0 > 0)
    if not used.any():
        return Estimate(estimate=math.nan, low=-1.0, high=1.0)
    x1, n1, x0, n0 = x1[used], n1[used], x0[used], n0[used]
    difference, variance = _mh_sato(x1, n1, x0, n0)
    if variance <= 0.0:
        # Haldane-Anscombe style: +0.5 to each cell of each stratum, for the variance only.
        variance = _mh_sato(x1 + 0.5, n1 + 1.0, x0 + 0.5, n0 + 1.0)[1]
    half_width = float(stats.norm.isf((1.0 - confidence) / 2)) * math.sqrt(variance)
    return Estimate(
        estimate=difference,
        low=max(-1.0, difference - half_width),
        high=min(1.0, difference + half_width),
    )


def _mh_sato(x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray) -> tuple[float, float]:
    # Mantel & Haenszel 1959 with Cochran weights n1 * n0 / N per stratum.
    total = n1 + n0
    weight = (n1 * n0 / total).sum()
    difference = float(((x1 * n0 - x0 * n1) / total).sum() / weight)
    # Sato 1989 variance: consistent for few large and for many sparse strata alike.
    p_term = ((n1**2 * x0 - n0**2 * x1 + n1 * n0 * (n0 - n1) / 2) / total**2).sum()
    q_term = ((x1 * (n0 - x0) + x0 * (n1 - x1)) / (2 * total)).sum()
    return difference, max(0.0, float((difference * p_term + q_term) / weight**2))


def _real_counts(array: np.ndarray, *, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must have 1 dimension, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must hold finite non-negative counts, got {array!r}")
    return array
