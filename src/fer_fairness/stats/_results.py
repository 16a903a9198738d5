"""Frozen result objects returned by the statistics core."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A closed interval [low, high]."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        """True when value lies in [low, high]; NaN is never contained."""
        return not math.isnan(value) and self.low <= value <= self.high


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A point estimate with its confidence interval."""

    estimate: float
    low: float
    high: float

    @property
    def interval(self) -> Interval:
        return Interval(low=self.low, high=self.high)


@dataclass(frozen=True, kw_only=True)
class RatioEstimate(Estimate):
    """A ratio of proportions; zero_corrected says a 0.5 continuity correction was applied."""

    zero_corrected: bool


@dataclass(frozen=True, kw_only=True)
class TestResult:
    """A hypothesis test: statistic, p-value and which method produced them."""

    __test__ = False  # not a pytest test class

    statistic: float
    p_value: float
    method: str
