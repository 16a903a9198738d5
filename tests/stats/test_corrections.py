import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fer_fairness.stats import adjust_p_values, corrected_confidence

from ._strategies import FEW

p_value_lists = st.lists(
    st.one_of(st.floats(0.0, 1.0), st.just(math.nan), st.sampled_from([0.0, 0.01, 0.05, 1.0])),
    max_size=30,
)


def hand_holm(p: np.ndarray) -> np.ndarray:
    """Holm 1979 step-down, written out."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def hand_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg 1995 step-up, written out."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        index = order[rank]
        running = min(running, m * p[index] / (rank + 1))
        adjusted[index] = running
    return adjusted


HAND = {"holm": hand_holm, "bh": hand_bh}


@FEW
@given(p_values=p_value_lists, method=st.sampled_from(["holm", "bh"]))
def test_adjustment_matches_hand_procedure_and_skips_nan(p_values, method):
    raw = np.array(p_values, dtype=float)
    adjusted = adjust_p_values(p_values=p_values, method=method)
    tested = ~np.isnan(raw)
    assert adjusted.shape == raw.shape
    assert np.array_equal(np.isnan(adjusted), ~tested)
    if tested.any():
        np.testing.assert_allclose(adjusted[tested], HAND[method](raw[tested]), rtol=1e-12, atol=1e-15)


@FEW
@given(p_values=p_value_lists, method=st.sampled_from(["holm", "bh"]))
def test_adjustment_is_bounded_and_monotone(p_values, method):
    raw = np.array(p_values, dtype=float)
    adjusted = adjust_p_values(p_values=p_values, method=method)
    tested = ~np.isnan(raw)
    raw, adjusted = raw[tested], adjusted[tested]
    assert np.all(adjusted >= raw - 1e-15)
    assert np.all((0.0 <= adjusted) & (adjusted <= 1.0))
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= -1e-15)
    # Holm controls the family-wise rate, so it is never less strict than BH.
    if method == "holm":
        assert np.all(adjusted >= adjust_p_values(p_values=raw, method="bh") - 1e-15)


def test_adjustment_known_values_and_empty_input():
    np.testing.assert_allclose(
        adjust_p_values(p_values=[0.01, math.nan, 0.04, 0.03], method="holm"),
        [0.03, math.nan, 0.06, 0.06],
    )
    np.testing.assert_allclose(
        adjust_p_values(p_values=[0.01, 0.04, 0.03, 0.5], method="bh"),
        [0.04, 0.16 / 3, 0.16 / 3, 0.5],
    )
    assert adjust_p_values(p_values=[], method="holm").shape == (0,)
    assert np.isnan(adjust_p_values(p_values=[math.nan], method="bh")).all()


@pytest.mark.parametrize("p_values", [[0.1, 1.2], [-0.1]])
def test_adjustment_rejects_invalid_p_values(p_values):
    with pytest.raises(ValueError):
        adjust_p_values(p_values=p_values, method="holm")


def test_adjustment_rejects_unknown_method():
    with pytest.raises(ValueError, match="holm"):
        adjust_p_values(p_values=[0.1], method="bonferroni")  # type: ignore[arg-type]


def test_corrected_confidence():
    assert corrected_confidence(alpha=0.05, family_size=10, method="holm", n_rejected=3) == pytest.approx(0.995)
    assert corrected_confidence(alpha=0.05, family_size=10, method="bh", n_rejected=3) == pytest.approx(0.985)
    assert corrected_confidence(alpha=0.05, family_size=10, method="bh", n_rejected=0) == pytest.approx(0.995)
    assert corrected_confidence(alpha=0.05, family_size=0, method="bh", n_rejected=0) == pytest.approx(0.95)
    assert corrected_confidence(alpha=0.05, family_size=1, method="holm", n_rejected=1) == pytest.approx(0.95)
    with pytest.raises(ValueError):
        corrected_confidence(alpha=0.05, family_size=2, method="bh", n_rejected=3)


@FEW
@given(p_values=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), method=st.sampled_from(["holm", "bh"]))
def test_adjustment_matches_statsmodels(p_values, method):
    from statsmodels.stats.multitest import multipletests

    expected = multipletests(p_values, method={"holm": "holm", "bh": "fdr_bh"}[method])[1]
    np.testing.assert_allclose(adjust_p_values(p_values=p_values, method=method), expected, rtol=1e-12, atol=1e-15)
