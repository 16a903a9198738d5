"""Over-attribution: is an emotion read into one group's faces that do not show it more often?"""

import pytest

from fer_fairness.gate import gate


@pytest.mark.fairness("over_attribution")
def test_over_attribution(fairness_record):
    gate(fairness_record)
