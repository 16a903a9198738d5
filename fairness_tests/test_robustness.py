"""Robustness: does blurring, darkening or re-compressing the photos cost one group more accuracy?

Opt-in: list perturbations in [criteria.robustness_gap] of thresholds.toml (each is one more model pass).
"""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("robustness_gap")
def test_robustness_gap(fairness_record):
    gate(fairness_record)
