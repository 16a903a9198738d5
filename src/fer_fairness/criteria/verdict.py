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


class Rule(enum.StrEnum):
    """Which rule decided a verdict; each can be checked from the record's interval and band."""

    OUTSIDE = "outside"  # FAIL: the whole interval lies outside the band
    INSIDE = "inside"  # PASS: the whole interval lies inside the band
    POWERED = "powered"  # PASS (harm): estimate in the band, interval holds "no disparity", power enough
    OVERLAP = "overlap"  # INCONCLUSIVE: the interval reaches across a band edge
    UNDEFINED = "undefined"  # INCONCLUSIVE: not tested, or the statistic is undefined for these counts


def decide(
    *,
    mode: str,
    band: Band,
    estimate: float,
    ci_low: float,
    ci_high: float,
    null: float | None,
    power: float | None,
    target_power: float,
) -> tuple[Verdict, Rule]:
    """PASS / FAIL / INCONCLUSIVE from the corrected interval alone (and, in harm mode, power).

    FAIL: the whole interval lies outside the band: the data show a disparity beyond the tolerance.
    PASS: the whole interval lies inside the band; or, in harm mode only, the estimate lies inside
    the band, the interval contains "no disparity" (the test of no difference does not reject) and
    the comparison had the target power to detect a disparity at the band's edge.
    INCONCLUSIVE: everything else. The interval is the only evidence, so a reader checks a verdict
    from the interval printed beside it; a significant difference inside the band's reach is not a FAIL.
    """
    if any(math.isnan(v) for v in (estimate, ci_low, ci_high)):
        return Verdict.INCONCLUSIVE, Rule.UNDEFINED
    if band.excludes_interval(ci_low, ci_high):
        return Verdict.FAIL, Rule.OUTSIDE
    if band.holds_interval(ci_low, ci_high):
        return Verdict.PASS, Rule.INSIDE
    if (
        mode == "harm"
        and null is not None
        and band.contains(estimate)
        and ci_low <= null <= ci_high
        and power is not None
        and power >= target_power
    ):
        return Verdict.PASS, Rule.POWERED
    return Verdict.INCONCLUSIVE, Rule.OVERLAP
