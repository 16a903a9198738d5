"""Calibration by simulation: the harm-mode gate's error rates, checked against their promises.

Fast variants run in CI; the `slow` variants repeat them with many more simulations.
"""

import math

import numpy as np
import pytest

from fer_fairness import stats
from fer_fairness.criteria.evaluate import evaluate
from fer_fairness.criteria.verdict import Verdict

from ._build import policy, table

LABELS = ("anger", "disgust")
ALPHA = 0.05


def _simulated_table(rng, rates: dict[str, float], n: int):
    counts = {}
    for group, rate in rates.items():
        hits = int(rng.binomial(n, rate))
        counts[group] = {"anger": {"anger": hits, "disgust": n - hits}}
    return table(counts, labels=LABELS, reference="R")


def _run(rates: dict[str, float], *, n: int, simulations: int, seed: int) -> list[list[Verdict]]:
    rng = np.random.default_rng(seed)
    thresholds = policy(only=("accuracy_gap",))
    return [
        [r.verdict for r in evaluate([_simulated_table(rng, rates, n)], thresholds=thresholds, seed=0)]
        for _ in range(simulations)
    ]


def _upper(rate: float, simulations: int) -> float:
    """A bound the observed rate exceeds by chance with probability about 1e-5 (4.3 standard errors)."""
    return rate + 4.3 * math.sqrt(rate * (1 - rate) / simulations)


def _check_null(simulations: int) -> None:
    # No true disparity, four comparisons in one Holm family: P(any false FAIL) <= alpha.
    rates = {"A": 0.75, "B": 0.75, "C": 0.75, "D": 0.75, "R": 0.75}
    families = _run(rates, n=60, simulations=simulations, seed=11)
    false_fail_rate = np.mean([Verdict.FAIL in verdicts for verdicts in families])
    assert false_fail_rate <= _upper(ALPHA, simulations)


def _check_planted(simulations: int) -> None:
    # A 10-point gap (twice the 5-point tolerance), 400 faces per group, one comparison: the gate
    # must find it about as often as the two-proportion power formula promises (about 0.90).
    documented = stats.power_two_proportions(p1=0.70, p0=0.80, n1=400, n0=400, alpha=ALPHA)
    assert documented == pytest.approx(0.90, abs=0.02)
    families = _run({"A": 0.70, "R": 0.80}, n=400, simulations=simulations, seed=12)
    found = np.mean([verdicts == [Verdict.FAIL] for verdicts in families])
    tolerance = 4.3 * math.sqrt(documented * (1 - documented) / simulations)
    # The gate also asks the estimate to leave the band, so it may fall a little below the bare test.
    assert documented - tolerance - 0.02 <= found <= documented + tolerance


def test_no_disparity_false_fail_rate_is_at_most_alpha():
    _check_null(simulations=200)


def test_planted_disparity_is_found_at_the_documented_power():
    _check_planted(simulations=300)


@pytest.mark.slow
def test_no_disparity_false_fail_rate_is_at_most_alpha_many_simulations():
    _check_null(simulations=5000)


@pytest.mark.slow
def test_planted_disparity_is_found_at_the_documented_power_many_simulations():
    _check_planted(simulations=5000)
