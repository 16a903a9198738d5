"""The words of a verdict: what a FAIL names, why a test is INCONCLUSIVE and what would settle it."""

from __future__ import annotations

import math

from fer_fairness.config import Thresholds
from fer_fairness.criteria.records import Record
from fer_fairness.criteria.verdict import Verdict

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


def numbers(record: Record, *, correction: str = "") -> str:
    """Estimate, interval, raw and adjusted p, threshold and n per group: the facts of any verdict."""
    parts = [
        f"estimate {_num(record.estimate)}",
        f"{(record.confidence or 0) * 100:.4g}% CI [{_num(record.ci_low)}, {_num(record.ci_high)}]",
        f"p = {_p(record.p_value)} ({record.test_method})",
        f"{correction} adjusted p = {_p(record.p_adjusted)}".strip(),
        f"threshold {record.threshold}",
        "n " + ", ".join(f"{g}={k}" for g, k in record.n.items()),
    ]
    if record.rates:
        parts.append("rates " + ", ".join(f"{g}={_num(v)}" for g, v in record.rates.items()))
    if record.count_ratio is not None:
        parts.append(f"raw count ratio {_num(record.count_ratio)} (shown only: it ignores group sizes)")
    return "; ".join(parts)


def explain(record: Record, thresholds: Thresholds) -> str:
    """One paragraph a person can act on."""
    text = _explain(record, thresholds)
    return f"{text} Note: {record.note}." if record.note else text


def _explain(record: Record, thresholds: Thresholds) -> str:
    facts = numbers(record, correction=_CORRECTION[thresholds.correction])
    head = subject(record)
    if record.verdict is Verdict.FAIL:
        if record.mode == "equivalence":
            why = "the whole corrected interval lies outside the tolerance band"
        else:
            why = f"the estimate lies outside the band and the disparity is significant at alpha = {thresholds.alpha:g}"
        return f"{head}: FAIL, {why}. {facts} (family of {record.family_size})"
    if record.verdict is Verdict.PASS:
        if (
            record.ci_low is not None
            and record.band_low is not None
            and record.band_low <= record.ci_low
            and record.ci_high <= record.band_high
        ):
            why = "the whole corrected interval lies inside the band"
        else:
            why = f"the estimate lies inside the band and power at the band's edge is {_num(record.power)}"
        return f"{head}: PASS, {why}. {facts}"
    return f"{head}: INCONCLUSIVE, {_settle(record, thresholds)}. {facts}"


def _settle(record: Record, thresholds: Thresholds) -> str:
    base = "the interval overlaps the band's edge"
    if record.power is not None:
        base += f" and power at the band's edge is {_num(record.power)} (< {thresholds.power:g})"
    if record.required_n is None:
        return base
    if not math.isfinite(record.required_n):
        return f"{base}; no sample size would settle it at these rates"
    have = ", ".join(f"{g}={k}" for g, k in record.n.items())
    return f"{base}; about {math.ceil(record.required_n)} per group would settle it (have {have})"
