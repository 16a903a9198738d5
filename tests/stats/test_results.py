import dataclasses
import math

import pytest

from fer_fairness.stats import Estimate, Interval, RatioEstimate, TestResult


def test_interval_contains_is_closed_and_rejects_nan():
    interval = Interval(low=0.2, high=0.5)
    assert interval.contains(0.2) and interval.contains(0.5) and interval.contains(0.3)
    assert not interval.contains(0.19) and not interval.contains(0.51)
    assert not interval.contains(math.nan)
    assert Interval(low=0.0, high=math.inf).contains(1e300)


def test_results_are_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        Interval(0.0, 1.0)  # type: ignore[misc]
    estimate = Estimate(estimate=0.1, low=0.0, high=0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.low = 0.05  # type: ignore[misc]
    assert estimate.interval == Interval(low=0.0, high=0.2)


def test_ratio_estimate_is_an_estimate():
    ratio = RatioEstimate(estimate=2.0, low=1.0, high=4.0, zero_corrected=True)
    assert isinstance(ratio, Estimate) and ratio.zero_corrected


def test_test_result_is_not_collected_by_pytest():
    assert TestResult.__test__ is False
    assert "__test__" not in {f.name for f in dataclasses.fields(TestResult)}
