"""Omnibus: is correctness associated with group at all (overall, and within true emotions)?"""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("association")
def test_association(fairness_record):
    gate(fairness_record)


@pytest.mark.fairness("association_stratified")
def test_association_stratified(fairness_record):
    gate(fairness_record)
