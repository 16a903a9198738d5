import pytest
from scipy import stats

from fer_fairness.stats import small_cluster_factor


@pytest.mark.parametrize("clusters", [2, 3, 7, 40, 1000])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.999])
def test_small_cluster_factor_is_the_squared_t_over_z_ratio(clusters, confidence):
    tail = (1 - confidence) / 2
    expected = (stats.t.ppf(1 - tail, clusters - 1) / stats.norm.ppf(1 - tail)) ** 2
    # Asked twice: the second answer comes from the memo and must be the same number.
    for _ in range(2):
        assert small_cluster_factor(clusters=clusters, confidence=confidence) == pytest.approx(expected, rel=1e-9)


def test_small_cluster_factor_grows_as_clusters_get_fewer():
    factors = [small_cluster_factor(clusters=k, confidence=0.95) for k in (2, 5, 30, 10_000)]
    assert factors == sorted(factors, reverse=True)
    assert factors[-1] == pytest.approx(1.0, abs=1e-3)


def test_fewer_than_two_clusters_leave_the_counts_alone():
    assert small_cluster_factor(clusters=1, confidence=0.95) == 1.0
    assert small_cluster_factor(clusters=0, confidence=0.95) == 1.0


def test_a_bad_level_is_rejected_even_after_a_good_one_was_remembered():
    small_cluster_factor(clusters=5, confidence=0.95)
    with pytest.raises(ValueError, match="confidence"):
        small_cluster_factor(clusters=5, confidence=1.5)
