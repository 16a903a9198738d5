"""Accuracy: gaps between groups (raw and within emotions) and a floor every group must clear."""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)


@pytest.mark.fairness("accuracy_gap_stratified")
def test_accuracy_gap_stratified(fairness_record):
    gate(fairness_record)


@pytest.mark.fairness("accuracy_floor")
def test_accuracy_floor(fairness_record):
    gate(fairness_record)
