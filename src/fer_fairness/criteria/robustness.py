"""robustness_gap: does a perturbation (blur, darkening, JPEG) cost one group more accuracy than its reference?

Each group's drop is its accuracy on the clean images minus its accuracy on the same images
perturbed; the statistic is drop(group) - drop(reference), so a positive value means the group
loses more. Clean and perturbed answers are paired image by image, exactly as a candidate run is
paired with its baseline, so the interval is the paired difference-in-differences of
stats/paired.py with the sign turned: there, the change is perturbed minus clean, i.e. minus the
drop. The p-value and power are read from that interval as for no_regression.
"""

from __future__ import annotations

import math

from fer_fairness.criteria.measures import Measure, _undefined
from fer_fairness.criteria.regression import from_interval
from fer_fairness.criteria.verdict import Band
from fer_fairness.stats._results import Estimate
from fer_fairness.stats.paired import PairedTable, change_in_gap_paired

_EMPTY = PairedTable(both=0, baseline_only=0, candidate_only=0, neither=0)


def drop_difference(*, group: PairedTable, reference: PairedTable, confidence: float) -> Estimate:
    """drop(group) - drop(reference), with the Agresti-Min interval of the paired change negated."""
    change = change_in_gap_paired(group=group, reference=reference, confidence=confidence)
    return Estimate(estimate=-change.estimate, low=-change.high, high=-change.low)


def robustness_gap(table, group: str, reference: str, detail: str, config) -> Measure:
    tolerance = config.threshold
    metric = f"extra accuracy drop under {detail} (group's drop minus reference's)"
    band = Band(low=-tolerance, high=tolerance)
    threshold = f"|difference| <= {tolerance:g}"
    paired = getattr(table, "perturbed", None)
    if paired is None or isinstance(paired, str):  # the pipeline says why it could not ask the model
        return _undefined(
            metric,
            f"no answers on perturbed images: {paired or 'none were asked for'}",
            band=band,
            null=0.0,
            threshold=threshold,
            n={},
            rates={},
        )
    tables = paired.get((detail, group), _EMPTY), paired.get((detail, reference), _EMPTY)
    n = {g: pt.n for g, pt in zip((group, reference), tables, strict=True)}
    rates: dict[str, float] = {}
    for g, pt in zip((group, reference), tables, strict=True):
        rates[f"{g} (clean)"] = (pt.both + pt.baseline_only) / pt.n if pt.n else math.nan
        rates[f"{g} ({detail})"] = (pt.both + pt.candidate_only) / pt.n if pt.n else math.nan

    def estimate(confidence: float) -> Estimate:
        return drop_difference(group=tables[0], reference=tables[1], confidence=confidence)

    first = estimate(0.95)
    if math.isnan(first.estimate):
        why = "a group has no face evaluated on both the clean and the perturbed image"
        return _undefined(metric, why, band=band, null=0.0, threshold=threshold, n=n, rates=rates)
    drops = [(pt.baseline_only - pt.candidate_only) / pt.n for pt in tables]  # clean minus perturbed accuracy
    note = (
        f"{detail} costs {group} {drops[0]:.2f} accuracy and {reference} {drops[1]:.2f}: "
        f"{abs(first.estimate):.2f} {'more' if first.estimate >= 0 else 'less'} "
        f"[{first.low:.2f}, {first.high:.2f}] (95%, before correction)"
    )
    return from_interval(
        estimate,
        metric=metric,
        band=band,
        threshold=threshold,
        test_method="difference of paired differences",
        n=n,
        rates=rates,
        inference="paired: each face clean and perturbed (Agresti-Min interval)",
        note=note,
    )
