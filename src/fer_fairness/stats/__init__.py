"""Statistics core: pure functions from counts to frozen results; never imports pytest."""

from ._results import Estimate, Interval, RatioEstimate, TestResult
from .bootstrap import bootstrap_counts
from .clustered import design_effect, design_effect_of_sums, small_cluster_factor
from .corrections import Correction, adjust_p_values, corrected_confidence
from .exact import calibrated_confidence
from .intervals import katz_ratio, newcombe_difference, wilson_interval
from .power import least_power, minimum_detectable_difference, power_two_proportions, required_sample_size
from .significance import (
    association_test,
    binomial_floor_test,
    cmh_association_test,
    mantel_haenszel_difference,
    two_proportion_test,
)

__all__ = [
    "Correction",
    "Estimate",
    "Interval",
    "RatioEstimate",
    "TestResult",
    "adjust_p_values",
    "association_test",
    "binomial_floor_test",
    "bootstrap_counts",
    "calibrated_confidence",
    "cmh_association_test",
    "design_effect",
    "design_effect_of_sums",
    "corrected_confidence",
    "katz_ratio",
    "mantel_haenszel_difference",
    "least_power",
    "minimum_detectable_difference",
    "newcombe_difference",
    "power_two_proportions",
    "required_sample_size",
    "small_cluster_factor",
    "two_proportion_test",
    "wilson_interval",
]
