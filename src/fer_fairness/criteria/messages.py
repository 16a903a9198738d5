"""The words of a verdict: what a FAIL names, why a test is INCONCLUSIVE and what would settle it."""

from __future__ import annotations

import math

from fer_fairness.config import Thresholds
from fer_fairness.criteria.records import Record
from fer_fairness.criteria.verdict import Rule

_CORRECTION = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def subject(record: Record) -> str:
    who = f"{record.attribute}={record.group}" if record.group else record.attribute
    if record.reference is not None:
        who += f" vs {record.reference}"
    if record.detail:
        who += f" [{record.detail}]"
    return f"{record.metric} for {who}"


def _level(record: Record) -> str:
    text = f"{(record.confidence or 0) * 100:.4g}% CI [{_num(record.ci_low)}, {_num(record.ci_high)}]"
    nominal = record.confidence_nominal
    if nominal is not None and record.confidence is not None and record.confidence > nominal + 1e-12:
        text += f" (level raised from {nominal * 100:.4g}% so that its exact error at these n keeps the promise)"
    return text


def numbers(record: Record, *, correction: str = "") -> str:
    """Estimate, interval, raw and adjusted p, threshold and n per group: the facts of any verdict."""
    parts = [f"estimate {_num(record.estimate)}"]
    if record.ci_low is not None:
        parts.append(_level(record))
    if record.p_value is not None:
        parts += [
            f"p ({'any difference' if record.null is not None else 'below the floor'}) = "
            f"{_p(record.p_value)} ({record.test_method})",
            f"{correction} adjusted p = {_p(record.p_adjusted)}".strip(),
        ]
    parts += [
        f"threshold {record.threshold}" if record.threshold else "",
        "n " + ", ".join(f"{g}={k}" for g, k in record.n.items()),
    ]
    if record.rates:
        parts.append("rates " + ", ".join(f"{g}={_num(v)}" for g, v in record.rates.items()))
    if record.count_ratio is not None:
        parts.append(f"raw count ratio {_num(record.count_ratio)} (shown only: it ignores group sizes)")
    if record.inference != "independent images":
        parts.append(record.inference)
    return "; ".join(p for p in parts if p)


def explain(record: Record, thresholds: Thresholds) -> str:
    """One paragraph a person can act on."""
    text = _explain(record, thresholds)
    return f"{text} Note: {record.note}." if record.note else text


def _band(record: Record) -> str:
    return f"[{_num(record.band_low)}, {_num(record.band_high)}]"


def _explain(record: Record, thresholds: Thresholds) -> str:
    facts = numbers(record, correction=_CORRECTION[thresholds.correction])
    head = subject(record)
    rule = Rule(record.rule)
    if rule is Rule.UNDEFINED:
        return f"{head}: INCONCLUSIVE, {record.reason}. {facts}"
    if rule is Rule.OUTSIDE:
        why = (
            f"the whole corrected interval lies outside the band {_band(record)}: "
            "the data show a disparity beyond the tolerance"
        )
        return f"{head}: FAIL, {why}. {facts} (family of {record.family_size})"
    if rule is Rule.INSIDE:
        return f"{head}: PASS, the whole corrected interval lies inside the band {_band(record)}. {facts}"
    if rule is Rule.POWERED:
        why = (
            f"the estimate lies inside the band {_band(record)}, the interval contains no disparity "
            f"({_num(record.null)}), and the comparison had power {_num(record.power)} "
            f"(>= {thresholds.power:g}) to detect a disparity at the band's edge"
        )
        return f"{head}: PASS, {why}. {facts}"
    return f"{head}: INCONCLUSIVE, {_settle(record, thresholds)}. {facts}"


def _settle(record: Record, thresholds: Thresholds) -> str:
    base = f"the corrected interval reaches across an edge of the band {_band(record)}"
    null = record.null
    if null is not None and record.ci_low is not None and not record.ci_low <= null <= record.ci_high:
        base += (
            f"; a difference from {_num(null)} is significant (the interval excludes it) "
            "but is not shown to exceed the tolerance"
        )
    elif record.power is not None and record.mode == "harm":
        base += f", and power at the band's edge is {_num(record.power)} (< {thresholds.power:g})"
    if record.required_n is None:
        return base
    if not math.isfinite(record.required_n):
        return f"{base}; the estimate sits on the band's edge, so no sample size would settle it at these rates"
    have = ", ".join(f"{g}={k}" for g, k in record.n.items())
    return f"{base}; about {math.ceil(record.required_n):,} images per group would settle it (have {have})"
