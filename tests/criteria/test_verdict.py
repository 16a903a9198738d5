"""The verdict rules of DESIGN.md, case by case."""

import math

import pytest

from fer_fairness.criteria.verdict import Band, Verdict, decide

BAND = Band(low=-0.05, high=0.05)


def _decide(mode, estimate, low, high, p_adjusted=1.0, power=None):
    return decide(
        mode=mode,
        band=BAND,
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        p_adjusted=p_adjusted,
        alpha=0.05,
        power=power,
        target_power=0.8,
    )


@pytest.mark.parametrize(
    ("estimate", "low", "high", "p_adjusted", "power", "expected"),
    [
        (-0.12, -0.18, -0.06, 0.001, None, Verdict.FAIL),  # outside the band and significant
        (-0.12, -0.30, 0.06, 0.20, None, Verdict.INCONCLUSIVE),  # outside but not significant
        (-0.04, -0.09, 0.01, 0.01, None, Verdict.INCONCLUSIVE),  # significant but inside the band, CI spans edge
        (0.01, -0.03, 0.04, 0.60, None, Verdict.PASS),  # whole interval inside
        (0.01, -0.07, 0.09, 0.80, 0.85, Verdict.PASS),  # inside, wide interval, but powered
        (0.01, -0.07, 0.09, 0.80, 0.50, Verdict.INCONCLUSIVE),  # inside, underpowered
        (0.06, -0.01, 0.13, 0.09, 0.99, Verdict.INCONCLUSIVE),  # outside, not significant: power is no excuse
    ],
)
def test_harm_mode(estimate, low, high, p_adjusted, power, expected):
    assert _decide("harm", estimate, low, high, p_adjusted, power) is expected


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.03, 0.04, Verdict.PASS),
        (-0.20, -0.06, Verdict.FAIL),
        (0.051, 0.2, Verdict.FAIL),
        (-0.07, 0.02, Verdict.INCONCLUSIVE),
    ],
)
def test_equivalence_mode_reads_only_the_interval(low, high, expected):
    # Neither p nor power can move an equivalence verdict.
    for p_adjusted, power in [(0.0001, 0.99), (1.0, None)]:
        assert _decide("equivalence", (low + high) / 2, low, high, p_adjusted, power) is expected


def test_undefined_estimate_is_never_a_pass():
    assert _decide("harm", math.nan, -0.01, 0.01, 1.0, 1.0) is Verdict.INCONCLUSIVE
    assert _decide("equivalence", math.nan, -0.01, 0.01) is Verdict.INCONCLUSIVE
