"""Controlled-variable analysis: the accuracy gap with image covariates and true emotion held equal."""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("adjusted_gap")
def test_adjusted_gap(fairness_record):
    gate(fairness_record)
