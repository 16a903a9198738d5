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


@pytest.mark.parametrize("seed", range(6))
def test_the_design_effect_from_sums_is_the_design_effect_of_the_persons(seed):
    # Oracle: the Rao-Scott sum over persons written out here; edge cases (one person, p = 0 or 1,
    # persons without images) included by the draws below.
    import numpy as np

    from fer_fairness.stats import design_effect, design_effect_of_sums

    rng = np.random.default_rng(seed)
    k = [1, 2, 5, 40, 300, 3][seed]
    ns = rng.integers(0, 9, size=k)
    rate = [0.5, 0.3, 0.0, 0.8, 0.5, 1.0][seed]
    xs = rng.binomial(ns, rate)
    used = ns > 0
    x, n, persons = xs.sum(), ns.sum(), int(used.sum())
    if persons >= 2 and 0 < x < n:
        p = x / n
        direct = persons / (persons - 1) * ((xs - p * ns) ** 2).sum() / n**2 / (p * (1 - p) / n)
        expected = max(1.0, direct)
    else:
        expected = 1.0
    sums = dict(x=int(x), n=int(n), xx=int((xs * xs).sum()), xn=int((xs * ns).sum()), nn=int((ns * ns).sum()))
    assert design_effect_of_sums(clusters=persons, **sums) == pytest.approx(expected, rel=1e-12)
    assert design_effect(x=xs, n=ns) == pytest.approx(expected, rel=1e-12)
