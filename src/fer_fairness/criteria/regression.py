"""no_regression: has a gap grown since the baseline run, beyond a tolerance?

The statistic is the change of the gap, D = gap(candidate) - gap(baseline), each gap being
group minus reference (stats/paired.py: paired on the same images, else independent).

Which way is a regression is read from the baseline's own printed interval for that gap, so a
reader can check it: when the baseline showed the group behind (its interval wholly below 0), a
regression is the group falling further behind, and the band is [-tolerance, +inf); when it showed
the group ahead, (-inf, +tolerance]; when it showed neither (its interval holds 0, or the baseline
has no such test), a move of more than the tolerance either way is one, [-tolerance, +tolerance].
A gap that shrinks never fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from fer_fairness.criteria.catalogue import REGRESSION_GAPS
from fer_fairness.criteria.measures import Interval, Measure, _undefined
from fer_fairness.criteria.verdict import Band
from fer_fairness.stats.paired import (
    PairedTable,
    change_in_gap_independent,
    change_in_gap_paired,
    mcnemar_p,
)

# The gaps a baseline is compared on (no_regression's details), and what each counts, in words.
# The reason a comparison with a group the baseline lacked is not tested (the report lists these as new).
NEW_GROUP = "new since the baseline"
GAPS = dict(zip(REGRESSION_GAPS, ("accuracy", "non-answer rate"), strict=True))


@dataclass(frozen=True, kw_only=True)
class TableBaseline:
    """One table's baseline: the baseline run's counts of the same dataset and grouping, and, where both
    runs answered the same images, each group's paired tables per gap."""

    source: str
    model: str  # the baseline's model name
    counts: dict[str, Any] | None  # the baseline's JSON counts entry for this grouping, or None
    gaps: dict[tuple[str, str, str], dict[str, Any]]  # (criterion, group, reference) -> the baseline record
    paired: dict[tuple[str, str], PairedTable] | None = None  # (criterion, group) -> table; None: not paired
    note: str = ""  # why the comparison is not paired, when it is not
    new_groups: tuple[str, ...] = field(default_factory=tuple)


def change_in_gap(table, group: str, reference: str, detail: str, config) -> Measure:
    from fer_fairness.criteria.catalogue import correct, non_answer

    tolerance = config.threshold
    base: TableBaseline | None = getattr(table, "baseline", None)
    metric = f"change in {GAPS[detail]} gap since the baseline"
    record = base.gaps.get((detail, group, reference)) if base is not None else None
    band, direction = _band(record, tolerance)
    threshold = f"{direction} by no more than {tolerance:g}"
    t = table.tensor
    select = correct if detail == "accuracy_gap" else non_answer
    candidate = [tuple(int(v) for v in select(t.counts[t.groups.index(g)], t, None)) for g in (group, reference)]
    rates = {
        f"{g} (candidate)": (x / n if n else math.nan) for g, (x, n) in zip((group, reference), candidate, strict=True)
    }

    def undefined(why: str) -> Measure:
        return _undefined(metric, why, band=band, null=0.0, threshold=threshold, n={}, rates=rates)

    if base is None:
        return undefined("no baseline for this model and dataset")
    missing = [g for g in (group, reference) if g in base.new_groups]
    if missing:
        return undefined(f"{NEW_GROUP}: {', '.join(missing)} had no faces in {base.model}'s run")
    if base.paired is not None:
        tables = base.paired[(detail, group)], base.paired[(detail, reference)]
        n = {group: tables[0].n, reference: tables[1].n}
        for g, pt in zip((group, reference), tables, strict=True):
            rates[f"{g} (baseline)"] = (pt.both + pt.baseline_only) / pt.n if pt.n else math.nan

        def estimate(confidence: float):
            return change_in_gap_paired(group=tables[0], reference=tables[1], confidence=confidence)

        tests = [(g, *mcnemar_p(pt)) for g, pt in zip((group, reference), tables, strict=True)]
        note = "; ".join(f"{g}: {method} p = {p:.2g} for its own change" for g, p, method in tests)
        inference = f"paired: the same images in both runs (Agresti-Min interval; baseline {base.model})"
        method = "difference of paired differences"
    else:
        tensor = base.counts
        previous = []
        for g in (group, reference):
            x, n_ = _baseline_rate(tensor, g, detail)
            previous.append((x, n_))
            rates[f"{g} (baseline)"] = x / n_ if n_ else math.nan
        n = {group: candidate[0][1], reference: candidate[1][1]}

        def estimate(confidence: float):
            return change_in_gap_independent(
                baseline=tuple(previous), candidate=tuple(candidate), confidence=confidence
            )

        note = base.note
        inference = f"independent runs (Agresti-Caffo rates; baseline {base.model})"
        method = "difference of independent differences"
    first = estimate(0.95)
    if math.isnan(first.estimate):
        return undefined("a group has no evaluated faces in one of the runs")
    if record is not None:
        note = "; ".join(
            n_
            for n_ in (
                f"baseline gap {_num(record.get('estimate'))} "
                f"[{_num(record.get('ci_low'))}, {_num(record.get('ci_high'))}]",
                note,
            )
            if n_
        )
    return from_interval(
        estimate,
        metric=metric,
        band=band,
        threshold=threshold,
        test_method=method,
        n=n,
        rates=rates,
        inference=inference,
        note=note,
    )


def from_interval(estimate, *, metric: str, band: Band, threshold: str, test_method: str, **fields) -> Measure:
    """A Measure read from an interval function (``estimate(confidence)`` -> Estimate), as the change
    of a gap has no closed-form test of its own: the p-value and the Wald power at the band's nearer
    finite edge come from the 95% interval's centre and width (its implied standard error)."""
    first = estimate(0.95)
    se = (first.high - first.low) / (2 * float(norm.isf(0.025)))
    centre = (first.high + first.low) / 2
    p_value = float(2 * norm.sf(abs(centre) / se)) if se > 0 else (0.0 if centre else 1.0)
    edge = min(abs(e) for e in (band.low, band.high) if math.isfinite(e))

    def interval_at(confidence: float, *, exact: bool = True) -> Interval:
        result = estimate(confidence)
        return result.low, result.high, confidence

    def power_at(alpha: float) -> float:
        return float(norm.cdf(edge / se - norm.isf(alpha / 2))) if se > 0 else 1.0

    return Measure(
        metric=metric,
        estimate=first.estimate,
        p_value=p_value,
        test_method=test_method,
        band=band,
        null=0.0,
        threshold=threshold,
        interval_at=interval_at,
        power_at=power_at,
        **fields,
    )


def _band(record: dict[str, Any] | None, tolerance: float) -> tuple[Band, str]:
    """The regression direction from the baseline's printed interval (see the module text)."""
    low, high = _float(record, "ci_low"), _float(record, "ci_high")
    if high is not None and high < 0:
        return Band(low=-tolerance, high=math.inf), "the group may fall further behind"
    if low is not None and low > 0:
        return Band(low=-math.inf, high=tolerance), "the reference may fall further behind"
    return Band(low=-tolerance, high=tolerance), "the gap may move"


def _float(record: dict[str, Any] | None, key: str) -> float | None:
    value = None if record is None else record.get(key)
    return None if value is None else float(value)  # JSON writes infinities as "inf" / "-inf"; float reads them


def _baseline_rate(entry: dict[str, Any], group: str, detail: str) -> tuple[int, int]:
    """Events and evaluated faces of one group in the baseline's counts (the same selectors as now)."""
    from fer_fairness.counts import CountTensor
    from fer_fairness.criteria.catalogue import correct, non_answer

    t = CountTensor(
        attribute=entry["attribute"],
        groups=tuple(entry["groups"]),
        labels=tuple(entry["labels"]),
        outcomes=tuple(entry["outcomes"]),
        counts=np.asarray(entry["counts"], dtype=np.int64),
    )
    select = correct if detail == "accuracy_gap" else non_answer
    x, n = select(t.counts[t.groups.index(group)], t, None)
    return int(x), int(n)


def _num(value: Any) -> str:
    return "n/a" if value is None else (value if isinstance(value, str) else f"{value:.3f}")
