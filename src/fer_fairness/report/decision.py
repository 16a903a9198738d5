"""The run's decision line: what failed, what passed, what lacked evidence, and what the policy made of it.

A count of verdicts is not a decision: 0 FAIL beside 411 INCONCLUSIVE means no disparity was shown,
not that none exists, and an equivalence gate is released only when every test PASSed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GATE_OPEN = "GATE OPEN"
GATE_CLOSED = "GATE CLOSED"
NOT_CLEARED = "NO DISPARITY SHOWN, NOT CLEARED"
NOT_RELEASABLE = "NOT RELEASABLE"
NOTHING_DECIDED = "NOTHING DECIDED"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """One run's verdict counts, whether it was partial, and the line that says what they mean."""

    status: str
    line: str
    fail: int
    passed: int
    inconclusive: int
    ran: int
    planned: int | None  # fairness tests collected (before -k / --lf deselection); None when unknown
    partial: bool
    mode: str
    inconclusive_policy: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's ``decision`` object."""
        return {
            "line": self.line,
            "status": self.status,
            "fail": self.fail,
            "pass": self.passed,
            "inconclusive": self.inconclusive,
            "ran": self.ran,
            "planned": self.planned,
            "partial": self.partial,
            "mode": self.mode,
            "inconclusive_policy": self.inconclusive_policy,
        }


def decide_run(
    records: Iterable[Mapping[str, Any]],
    *,
    mode: str,
    inconclusive: str,
    planned: int | None = None,
    partial_note: str = "",
) -> Decision:
    """The decision for the records that ran, under ``mode`` (harm / equivalence) and ``inconclusive``
    (skip / fail). ``planned`` fairness tests were collected; fewer ran means a partial run, and so does
    a ``partial_note`` (why some were never collected, e.g. --lf skipped files)."""
    verdicts = Counter(str(r["verdict"]) for r in records)
    fail, passed, unsure = verdicts["FAIL"], verdicts["PASS"], verdicts["INCONCLUSIVE"]
    ran = fail + passed + unsure
    partial = bool(partial_note) or (planned is not None and ran < planned)
    if ran == 0:
        status = NOTHING_DECIDED
    elif fail or (unsure and inconclusive == "fail"):
        status = GATE_CLOSED
    elif mode == "equivalence" and (unsure or partial):
        status = NOT_RELEASABLE
    elif unsure or partial:
        status = NOT_CLEARED
    else:
        status = GATE_OPEN

    parts = [f"{fail} FAIL" + (" (a disparity beyond tolerance shown)" if fail else ""), f"{passed} PASS"]
    counted = f"{unsure} INCONCLUSIVE"
    if unsure:
        effect = "failed" if inconclusive == "fail" else "skipped"
        counted += f" (not enough evidence either way; {effect} by policy inconclusive = {inconclusive})"
    parts.append(counted)
    line = f"fer-fairness decision: {status}: " + ", ".join(parts)
    if status == NOT_RELEASABLE:
        line += "; equivalence needs every test to PASS"
    if partial:
        of = f" of {planned}" if planned is not None else ""
        line += f"; partial run: {ran}{of} fairness tests ran" + (f" ({partial_note})" if partial_note else "")
    return Decision(
        status=status,
        line=line,
        fail=fail,
        passed=passed,
        inconclusive=unsure,
        ran=ran,
        planned=planned,
        partial=partial,
        mode=mode,
        inconclusive_policy=inconclusive,
    )


def number(value: Any) -> str:
    """A number as messages write it; JSON's "inf" / "-inf" strings and None pass as words."""
    if value is None or isinstance(value, str):
        return "n/a" if value is None else value
    if math.isnan(value):
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)  # float("inf") reads JSON's "inf"


def headline(record: Mapping[str, Any]) -> str:
    """The numbers of a FAIL in one short phrase: "estimate X, CI [a, b] outside band [l, h]".

    It leads every FAIL message, because pytest's short summary keeps only a line's first ~80 characters.
    """
    text = f"estimate {number(record.get('estimate'))}"
    if record.get("ci_low") is not None:
        text += f", CI [{number(record.get('ci_low'))}, {number(record.get('ci_high'))}]"
    if record.get("band_low") is not None or record.get("band_high") is not None:
        text += f" outside band [{number(record.get('band_low'))}, {number(record.get('band_high'))}]"
    return text


def _margin(record: Mapping[str, Any]) -> float:
    """How far the corrected interval lies outside the band (in logs for ratios, whose null is 1)."""
    low, high = _float(record.get("ci_low")), _float(record.get("ci_high"))
    band_low, band_high = _float(record.get("band_low")), _float(record.get("band_high"))
    if record.get("null") == 1 and min(low, band_low) > 0 and band_high > 0:
        low, high, band_low, band_high = (math.log(v) for v in (low, high, band_low, band_high))
    gaps = [g for g in (band_low - high, low - band_high) if not math.isnan(g)]
    return max(gaps, default=-math.inf)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """FAILs of one criterion on one model and dataset (and detail, e.g. a confusion pair): one disparity
    seen in several groupings. ``worst`` is the record whose interval lies farthest outside the band."""

    criterion: str
    model: str
    dataset: str
    detail: str | None
    count: int
    worst: Mapping[str, Any]

    def line(self) -> str:
        w = self.worst
        who = f"{w.get('attribute')}={w.get('group')}" + (f" vs {w['reference']}" if w.get("reference") else "")
        detail = f" [{self.detail}]" if self.detail else ""
        return f"{self.count} FAIL {self.criterion}{detail}, {self.model} on {self.dataset}; worst {who}: {headline(w)}"


def group_failures(records: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """The FAIL records grouped by finding (model, dataset, criterion, detail), most FAILs first."""
    groups: dict[tuple[str, str, str, str | None], list[Mapping[str, Any]]] = {}
    for record in records:
        if str(record["verdict"]) == "FAIL":
            key = (record["criterion"], record["model"], record["dataset"], record.get("detail"))
            groups.setdefault(key, []).append(record)
    findings = [
        Finding(
            criterion=criterion,
            model=model,
            dataset=dataset,
            detail=detail,
            count=len(members),
            worst=max(members, key=_margin),
        )
        for (criterion, model, dataset, detail), members in groups.items()
    ]
    return sorted(findings, key=lambda f: (-f.count, -_margin(f.worst), f.criterion, f.model, f.dataset))
