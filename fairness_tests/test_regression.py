"""Release gating: has any gap grown since the baseline run (--fairness-baseline)?"""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("no_regression")
def test_no_regression(fairness_record):
    gate(fairness_record)
