"""The change of a gap between two runs (a baseline and a candidate): paired on the same images, or not.

A gap is p(group) - p(reference); its change from baseline to candidate is the
difference-in-differences D = (pC_g - pB_g) - (pC_r - pB_r). Groups hold disjoint images, so the
two within-group changes are independent and their variances add.

* Paired (both runs answered the same images): each group's change is a difference of paired
  proportions, from its 2x2 table of (baseline right?, candidate right?): b = right only before,
  c = right only now. Interval: Agresti & Min (2005) adjusted Wald, 0.5 added to each cell, whose
  coverage is close to nominal down to small tables; their variances add for D.
* Independent (different images, or a baseline without per-sample outcomes): each of the four rates
  with the Agresti & Caffo (2000) adjustment (one success and one failure added), variances added.

statsmodels has neither interval for a difference of two such differences; the per-group McNemar
test (exact binomial on the discordant pairs when they are few) comes from statsmodels and is
reported as information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm
from statsmodels.stats.contingency_tables import mcnemar

from ._results import Estimate
from ._validation import check_confidence

# Below this many discordant pairs McNemar's chi-square is poor; the exact binomial test is used.
EXACT_MCNEMAR_BELOW = 25


@dataclass(frozen=True, kw_only=True)
class PairedTable:
    """One group's images answered by both runs: both right, baseline only, candidate only, neither."""

    both: int
    baseline_only: int
    candidate_only: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.baseline_only + self.candidate_only + self.neither

    @property
    def change(self) -> float:
        """Candidate rate minus baseline rate (nan for no images)."""
        return (self.candidate_only - self.baseline_only) / self.n if self.n else math.nan

    def adjusted(self) -> tuple[float, float]:
        """Agresti & Min (2005): the change and its variance with 0.5 added to each of the four cells."""
        b, c, n = self.baseline_only + 0.5, self.candidate_only + 0.5, self.n + 2.0
        change = (c - b) / n
        return change, ((b + c) - (c - b) ** 2 / n) / n**2


def mcnemar_p(table: PairedTable) -> tuple[float, str]:
    """McNemar's test of "the rate did not change" (exact when discordant pairs are few): p and method."""
    discordant = table.baseline_only + table.candidate_only
    if discordant == 0:
        return 1.0, "McNemar (no discordant pairs)"
    exact = discordant < EXACT_MCNEMAR_BELOW
    grid = [[table.both, table.baseline_only], [table.candidate_only, table.neither]]
    result = mcnemar(grid, exact=exact, correction=not exact)
    return float(result.pvalue), "McNemar exact" if exact else "McNemar"


def change_in_gap_paired(*, group: PairedTable, reference: PairedTable, confidence: float) -> Estimate:
    """D = change(group) - change(reference) on paired images, with its Agresti-Min interval."""
    check_confidence(confidence)
    if group.n == 0 or reference.n == 0:
        return Estimate(estimate=math.nan, low=-2.0, high=2.0)
    (dg, vg), (dr, vr) = group.adjusted(), reference.adjusted()
    return _interval(group.change - reference.change, dg - dr, vg + vr, confidence)


def change_in_gap_independent(
    *,
    baseline: tuple[tuple[float, float], tuple[float, float]],
    candidate: tuple[tuple[float, float], tuple[float, float]],
    confidence: float,
) -> Estimate:
    """D from four independent rates ``((x_group, n_group), (x_reference, n_reference))`` per run.

    Each rate with the Agresti & Caffo (2000) adjustment (x + 1 of n + 2), variances added.
    """
    check_confidence(confidence)
    rates = [*baseline, *candidate]
    if any(n <= 0 for _, n in rates):
        return Estimate(estimate=math.nan, low=-2.0, high=2.0)
    (bg, br), (cg, cr) = baseline, candidate
    observed = (cg[0] / cg[1] - cr[0] / cr[1]) - (bg[0] / bg[1] - br[0] / br[1])
    adjusted = [((x + 1) / (n + 2), n + 2) for x, n in (bg, br, cg, cr)]
    (pbg, _), (pbr, _), (pcg, _), (pcr, _) = adjusted
    variance = sum(p * (1 - p) / n for p, n in adjusted)
    return _interval(observed, (pcg - pcr) - (pbg - pbr), variance, confidence)


def _interval(observed: float, centre: float, variance: float, confidence: float) -> Estimate:
    """A Wald interval around the adjusted centre, clipped to [-2, 2] and always holding the estimate."""
    half = float(norm.isf((1 - confidence) / 2)) * math.sqrt(max(variance, 0.0))
    low, high = max(-2.0, centre - half), min(2.0, centre + half)
    return Estimate(estimate=observed, low=min(low, observed), high=max(high, observed))
