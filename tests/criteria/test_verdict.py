"""The verdict rules, case by case: every verdict is read from the interval printed beside it."""

import math

import pytest

from fer_fairness.criteria.verdict import Band, Rule, Verdict, decide

BAND = Band(low=-0.05, high=0.05)


def _decide(mode, estimate, low, high, power=None, null=0.0):
    return decide(
        mode=mode, band=BAND, estimate=estimate, ci_low=low, ci_high=high, null=null, power=power, target_power=0.8
    )


@pytest.mark.parametrize(
    ("estimate", "low", "high", "power", "expected"),
    [
        ((-0.12, -0.18, -0.06, None, (Verdict.FAIL, Rule.OUTSIDE))),  # the whole interval beyond the band
        ((-0.12, -0.30, 0.06, None, (Verdict.INCONCLUSIVE, Rule.OVERLAP))),  # outside, but the interval reaches in
        # Significant (excludes 0) and the estimate outside the band, but the interval reaches into the band:
        # a difference exists, one beyond the tolerance is not shown. The old rule FAILed this.
        ((-0.07, -0.09, -0.02, None, (Verdict.INCONCLUSIVE, Rule.OVERLAP))),
        ((0.01, -0.03, 0.04, None, (Verdict.PASS, Rule.INSIDE))),  # whole interval inside
        ((0.01, -0.07, 0.09, 0.85, (Verdict.PASS, Rule.POWERED))),  # inside, wide interval holding 0, powered
        ((0.01, -0.07, 0.09, 0.50, (Verdict.INCONCLUSIVE, Rule.OVERLAP))),  # inside, underpowered
        ((0.06, -0.01, 0.13, 0.99, (Verdict.INCONCLUSIVE, Rule.OVERLAP))),  # estimate outside: power is no excuse
        # Estimate inside and powered, but the interval excludes 0: a real difference was found, so "powered
        # and found none" does not apply (a true gap just beyond the band would pass this way too often).
        ((0.04, 0.02, 0.07, 0.99, (Verdict.INCONCLUSIVE, Rule.OVERLAP))),
    ],
)
def test_harm_mode(estimate, low, high, power, expected):
    assert _decide("harm", estimate, low, high, power) == expected


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.03, 0.04, (Verdict.PASS, Rule.INSIDE)),
        (-0.05, 0.05, (Verdict.PASS, Rule.INSIDE)),  # the band is closed
        (-0.20, -0.06, (Verdict.FAIL, Rule.OUTSIDE)),
        (0.051, 0.2, (Verdict.FAIL, Rule.OUTSIDE)),
        (0.05, 0.2, (Verdict.INCONCLUSIVE, Rule.OVERLAP)),  # touches the edge: not wholly outside
        (-0.07, 0.02, (Verdict.INCONCLUSIVE, Rule.OVERLAP)),
    ],
)
def test_equivalence_mode_reads_only_the_interval(low, high, expected):
    # Power cannot move an equivalence verdict.
    for power in (0.99, None):
        assert _decide("equivalence", (low + high) / 2, low, high, power) == expected


def test_a_floor_has_no_powered_route():
    band = Band(low=0.5, high=1.0)
    verdict = decide(
        mode="harm", band=band, estimate=0.6, ci_low=0.45, ci_high=0.7, null=None, power=0.99, target_power=0.8
    )
    assert verdict == (Verdict.INCONCLUSIVE, Rule.OVERLAP)


def test_undefined_estimate_or_interval_is_never_a_pass():
    assert _decide("harm", math.nan, -0.01, 0.01, 1.0) == (Verdict.INCONCLUSIVE, Rule.UNDEFINED)
    assert _decide("equivalence", 0.0, math.nan, math.nan) == (Verdict.INCONCLUSIVE, Rule.UNDEFINED)
