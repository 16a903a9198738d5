"""The change of a gap between two runs: formulas checked by hand, coverage by simulation, McNemar by scipy."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2, norm

from fer_fairness.stats.paired import (
    PairedTable,
    change_in_gap_independent,
    change_in_gap_paired,
    mcnemar_p,
)


def test_agresti_min_adjustment_by_hand():
    """Agresti & Min (2005): 0.5 in each cell; Var = [(b+c) - (c-b)^2/n] / n^2 on the adjusted table."""
    g = PairedTable(both=40, baseline_only=3, candidate_only=12, neither=45)  # n = 100
    r = PairedTable(both=80, baseline_only=5, candidate_only=5, neither=10)
    b, c, n = 3.5, 12.5, 102.0
    var_g = ((b + c) - (c - b) ** 2 / n) / n**2
    var_r = ((5.5 + 5.5) - 0.0) / 102.0**2
    centre = (c - b) / n - 0.0
    half = norm.isf(0.025) * math.sqrt(var_g + var_r)
    result = change_in_gap_paired(group=g, reference=r, confidence=0.95)
    assert result.estimate == pytest.approx((12 - 3) / 100 - 0.0)
    assert (result.low, result.high) == pytest.approx((centre - half, centre + half))


def test_independent_rates_by_hand():
    """Agresti & Caffo (2000): each rate (x+1)/(n+2), variances p(1-p)/(n+2) added."""
    baseline = ((30, 50), (40, 50))
    candidate = ((20, 50), (41, 50))
    result = change_in_gap_independent(baseline=baseline, candidate=candidate, confidence=0.9)
    p = [(x + 1) / (n + 2) for x, n in (*baseline, *candidate)]
    centre = (p[2] - p[3]) - (p[0] - p[1])
    half = norm.isf(0.05) * math.sqrt(sum(q * (1 - q) / 52 for q in p))
    assert result.estimate == pytest.approx((20 / 50 - 41 / 50) - (30 / 50 - 40 / 50))
    assert (result.low, result.high) == pytest.approx((centre - half, centre + half))


def test_the_interval_always_holds_the_estimate_and_an_empty_group_is_undefined():
    g = PairedTable(both=0, baseline_only=0, candidate_only=3, neither=0)
    r = PairedTable(both=3, baseline_only=0, candidate_only=0, neither=0)
    result = change_in_gap_paired(group=g, reference=r, confidence=0.99)
    assert result.low <= result.estimate == 1.0 <= result.high
    empty = change_in_gap_paired(
        group=PairedTable(both=0, baseline_only=0, candidate_only=0, neither=0), reference=r, confidence=0.95
    )
    assert math.isnan(empty.estimate)


@pytest.mark.parametrize("discordant", [(0, 0), (2, 7), (10, 14), (30, 12)])
def test_mcnemar_is_exact_binomial_when_discordant_pairs_are_few(discordant):
    b, c = discordant
    p, method = mcnemar_p(PairedTable(both=50, baseline_only=b, candidate_only=c, neither=20))
    if b + c == 0:
        assert p == 1.0
    elif b + c < 25:
        assert method == "McNemar exact"
        assert p == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue)
    else:
        assert method == "McNemar"
        assert p == pytest.approx(chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1))  # with continuity correction


def _coverage(simulate, truth: float, runs: int, confidence: float) -> float:
    hits = 0
    for low, high in simulate(runs):
        hits += low <= truth <= high
    return hits / runs


@pytest.mark.parametrize(("n", "p_before", "p_after"), [(40, 0.7, 0.6), (150, 0.85, 0.85), (300, 0.5, 0.58)])
def test_paired_interval_covers_the_true_change_in_gap(n, p_before, p_after):
    """Simulated paired runs (the candidate right with a correlated chance): coverage near 95%."""
    rng = np.random.default_rng(n)
    confidence, runs = 0.95, 1500

    def tables(size, before, after):
        # joint cells of (right before, right now) with positive correlation
        both = before * after + 0.5 * (min(before, after) - before * after)
        cells = np.array([both, before - both, after - both, 1 - before - after + both])
        return rng.multinomial(size, cells, runs)

    group, reference = tables(n, p_before, p_after), tables(n, 0.8, 0.8)
    truth = (p_after - p_before) - 0.0

    def simulate(_runs):
        for g, r in zip(group, reference, strict=True):
            result = change_in_gap_paired(
                group=PairedTable(both=g[0], baseline_only=g[1], candidate_only=g[2], neither=g[3]),
                reference=PairedTable(both=r[0], baseline_only=r[1], candidate_only=r[2], neither=r[3]),
                confidence=confidence,
            )
            yield result.low, result.high

    assert _coverage(simulate, truth, runs, confidence) >= 0.93


def test_independent_interval_covers_the_true_change_in_gap():
    rng = np.random.default_rng(5)
    runs, n = 2000, 60
    rates = (0.6, 0.8, 0.45, 0.8)
    draws = rng.binomial(n, rates, size=(runs, 4))
    truth = (rates[2] - rates[3]) - (rates[0] - rates[1])

    def simulate(_runs):
        for x in draws:
            result = change_in_gap_independent(
                baseline=((x[0], n), (x[1], n)), candidate=((x[2], n), (x[3], n)), confidence=0.95
            )
            yield result.low, result.high

    assert _coverage(simulate, truth, runs, 0.95) >= 0.93
