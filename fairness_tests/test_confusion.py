"""Directional confusions: is "anger read as disgust" more frequent, as a rate, for one group?"""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("confusion_ratio")
def test_confusion_ratio(fairness_record):
    gate(fairness_record)
