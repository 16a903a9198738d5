"""What a fairness test does with its record: pass, fail with the numbers, or skip with the reason."""

from __future__ import annotations

import pytest

from fer_fairness.criteria.records import Record
from fer_fairness.criteria.verdict import Verdict


def gate(record: Record) -> None:
    """Turn a verdict into a test outcome. FAIL is an ordinary failure whose message carries the numbers."""
    __tracebackhide__ = True
    if record.verdict is Verdict.FAIL:
        pytest.fail(record.reason, pytrace=False)
    if record.verdict is Verdict.INCONCLUSIVE:
        if record.inconclusive == "fail":
            pytest.fail(record.reason, pytrace=False)
        pytest.skip(record.reason)
