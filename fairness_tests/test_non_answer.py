"""Non-answers: a model that refuses or fails more often for one group is biased too."""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("non_answer_gap")
def test_non_answer_gap(fairness_record):
    gate(fairness_record)
