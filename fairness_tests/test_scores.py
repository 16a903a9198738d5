"""Scores: what a model's per-label scores show beyond its answer (models without scores: INCONCLUSIVE)."""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("score_shift")
def test_score_shift(fairness_record):
    gate(fairness_record)


@pytest.mark.fairness("calibration_gap")
def test_calibration_gap(fairness_record):
    gate(fairness_record)
