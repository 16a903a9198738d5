"""Per-emotion recall: is each expression recognised as often for every group?"""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("recall_gap")
def test_recall_gap(fairness_record):
    gate(fairness_record)
