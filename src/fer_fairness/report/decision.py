"""The run's decision line: what failed, what passed, what lacked evidence, and what the policy made of it.

A count of verdicts is not a decision: 0 FAIL beside 411 INCONCLUSIVE means no disparity was shown,
not that none exists, and an equivalence gate is released only when every test PASSed.
"""

from __future__ import annotations

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
