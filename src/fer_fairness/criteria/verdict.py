"""The three-valued verdict, exactly as DESIGN.md defines it for `harm` and `equivalence` modes."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True, kw_only=True)
class Band:
    """The tolerance band around "no disparity": [low, high] (either end may be infinite)."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def holds_interval(self, low: float, high: float) -> bool:
        return self.low <= low and high <= self.high

    def excludes_interval(self, low: float, high: float) -> bool:
        return high < self.low or low > self.high


def decide(
    *,
    mode: str,
    band: Band,
    estimate: float,
    ci_low: float,
    ci_high: float,
    p_adjusted: float,
    alpha: float,
    power: float | None,
    target_power: float,
) -> Verdict:
    """PASS / FAIL / INCONCLUSIVE from the corrected interval, the adjusted p and the power.

    harm: FAIL when the estimate is outside the band and the disparity is significant after
    correction; PASS when not FAIL and either the whole interval is inside the band, or the
    estimate is inside and the comparison had the target power at the band's edge.
    equivalence: PASS only when the whole interval is inside; FAIL when it is wholly outside.
    """
    if math.isnan(estimate):
        return Verdict.INCONCLUSIVE
    if mode == "equivalence":
        if band.holds_interval(ci_low, ci_high):
            return Verdict.PASS
        if band.excludes_interval(ci_low, ci_high):
            return Verdict.FAIL
        return Verdict.INCONCLUSIVE
    if not band.contains(estimate) and p_adjusted < alpha:
        return Verdict.FAIL
    if band.holds_interval(ci_low, ci_high):
        return Verdict.PASS
    if band.contains(estimate) and power is not None and power >= target_power:
        return Verdict.PASS
    return Verdict.INCONCLUSIVE
