"""What a fairness test does with its record: pass, fail with the numbers, or skip with the reason."""

from __future__ import annotations

import pytest

from fer_fairness.criteria.records import Record
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.report.decision import headline


def gate(record: Record) -> None:
    """Turn a verdict into a test outcome. FAIL is an ordinary failure whose message carries the numbers.

    A FAIL's first line is the numbers (pytest's short summary shows only the start of the first line),
    the full reason follows on the next. An INCONCLUSIVE skip or failure starts "INCONCLUSIVE", so no
    reader of the terminal or of junit.xml takes it for an ordinary skip or a shown disparity.
    """
    __tracebackhide__ = True
    if record.verdict is Verdict.FAIL:
        pytest.fail(f"FAIL: {headline(record.to_dict())}\n{record.reason}", pytrace=False)
    if record.verdict is Verdict.INCONCLUSIVE:
        if record.inconclusive == "fail":
            pytest.fail(f"INCONCLUSIVE (failed by policy inconclusive = fail): {record.reason}", pytrace=False)
        pytest.skip(f"INCONCLUSIVE: {record.reason}")
