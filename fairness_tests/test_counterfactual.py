"""Counterfactual consistency: the same face rendered at two skin tones should get the same answer.

Tested only on a dataset with counterfactual renders (--fairness-dataset "synthetic?counterfactual=true");
elsewhere it has no tests.
"""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("counterfactual_flip")
def test_counterfactual_flip(fairness_record):
    gate(fairness_record)
