"""adjusted_gap's own Newton fit and delta-method interval against statsmodels.

Oracles: ``sm.Logit(...).fit(method="newton")`` for the coefficients, and for the estimate and its
standard error a direct dense computation (pandas selection, the design as a matrix, statsmodels'
fitted coefficients and its Hessian) written out here independently of the module's chunked one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from fer_fairness.criteria.adjusted import _clusters, _Design, _fit, adjusted_gap

COVARIATES = ("luminance", "contrast", "sharpness")


def _design(rng, n: int, k: int, emotions: int) -> tuple[_Design, np.ndarray, np.ndarray]:
    group = (rng.random(n) < 0.4).astype(float)
    z = rng.normal(size=(n, k))
    # the design takes its rows sorted by emotion (adjusted_gap sorts them once)
    emotion = np.sort(rng.integers(0, emotions, n)) if emotions > 1 else np.zeros(n, dtype=np.intp)
    dummies = np.zeros((n, emotions - 1))
    dummies[np.flatnonzero(emotion), emotion[emotion > 0] - 1] = 1.0
    dense = np.column_stack([np.ones(n), group, z, dummies])
    return _Design.of(group=group, z=z, emotion=emotion), dense, emotion


@pytest.mark.parametrize(
    ("seed", "n", "k", "emotions", "scale"),
    [(0, 500, 3, 4, 1.0), (1, 3000, 1, 7, 2.0), (2, 200, 0, 1, 0.5), (3, 70_000, 2, 3, 1.5)],
)
def test_coefficients_equal_statsmodels_newton(seed, n, k, emotions, scale):
    rng = np.random.default_rng(seed)
    design, dense, _ = _design(rng, n, k, emotions)
    truth = rng.normal(0, scale, dense.shape[1])
    y = (rng.random(n) < expit(dense @ truth)).astype(float)
    beta, hessian, why = _fit(y, design)
    assert why == ""
    oracle = sm.Logit(y, dense).fit(method="newton", disp=0, tol=1e-12, maxiter=200)
    np.testing.assert_allclose(beta, oracle.params, rtol=1e-8, atol=1e-10)
    # the X'WX handed on to the sandwich is statsmodels' (negated) Hessian at the optimum
    np.testing.assert_allclose(hessian, -oracle.model.hessian(oracle.params), rtol=1e-9)


def test_a_design_that_separates_or_is_aliased_is_refused_with_the_reason():
    rng = np.random.default_rng(4)
    design, _, emotion = _design(rng, 400, 2, 2)
    # the first covariate decides correctness exactly: complete separation
    y = (design.z[:, 0] > 0).astype(float)
    assert _fit(y, design)[2] == "perfect separation: the group or a covariate predicts correctness exactly"
    # quasi-complete: right above a rounded covariate's 0, wrong below, a coin at 0 (no finite MLE)
    cut = np.round(design.z[:, 0])
    quasi = _Design.of(group=design.group, z=np.column_stack([cut, design.z[:, 1]]), emotion=emotion)
    y = np.where(cut > 0, 1.0, np.where(cut < 0, 0.0, (rng.random(400) < 0.5).astype(float)))
    assert _fit(y, quasi)[2].startswith("the logistic fit did not converge")
    # a covariate equal to the group indicator: the design has no full rank
    aliased = _Design.of(group=design.group, z=np.column_stack([design.group, design.z[:, 1]]), emotion=emotion)
    y = (rng.random(400) < 0.5).astype(float)
    assert _fit(y, aliased)[2].startswith("the group cannot be told apart")


def _ragged(seed: int, n: int = 3000) -> pd.DataFrame:
    """Two groups of unequal size, people with several photos, an emotion only one group shows,
    an emotion always read right, NaN covariates, a constant covariate, strongly predictive lighting."""
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < 0.35, "Black", "White")
    emotion = rng.choice(["anger", "fear", "happiness", "neutral", "surprise"], n)
    emotion[(group == "White") & (emotion == "fear")] = "anger"  # fear: only Black faces show it
    luminance = rng.normal(np.where(group == "Black", 0.4, 0.6), 0.15)
    logit = -1.0 + 8.0 * luminance - 0.4 * (group == "Black") + 0.3 * (emotion == "neutral")
    correct = rng.random(n) < expit(logit)
    correct[emotion == "surprise"] = True  # settled: enters the mean, not the fit
    contrast = rng.normal(0.2, 0.05, n)
    contrast[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame(
        {
            "group": group,
            "emotion": emotion,
            "correct": correct,
            "subject_id": [f"p{i // 3}" for i in range(n)],
            "luminance": luminance,
            "contrast": contrast,
            "sharpness": 2.0,
        }
    )


def _direct(rows: pd.DataFrame, group: str, reference: str) -> tuple[float, float]:
    """Estimate and clustered delta-method standard error, straight from the definitions."""
    pair = rows[rows["group"].isin([group, reference])].dropna(subset=["luminance", "contrast"])
    shared = set(pair.loc[pair["group"] == group, "emotion"]) & set(pair.loc[pair["group"] == reference, "emotion"])
    pair = pair[pair["emotion"].isin(shared)].reset_index(drop=True)
    settled = pair.groupby("emotion")["correct"].transform(lambda c: c.nunique() == 1).to_numpy(dtype=bool)
    data = pair[~settled]
    z = data[["luminance", "contrast"]].to_numpy()
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    dummies = pd.get_dummies(data["emotion"].astype(str), drop_first=True, dtype=float).to_numpy()
    is_group = (data["group"] == group).to_numpy(dtype=float)
    x = np.column_stack([np.ones(len(data)), is_group, z, dummies])
    y = data["correct"].to_numpy(dtype=float)
    result = sm.Logit(y, x).fit(method="newton", disp=0, tol=1e-12)
    beta = result.params
    x1, x0 = x.copy(), x.copy()
    x1[:, 1], x0[:, 1] = 1.0, 0.0
    p, p1, p0 = expit(x @ beta), expit(x1 @ beta), expit(x0 @ beta)
    total = len(pair)
    estimate = (p1 - p0).sum() / total
    gradient = (x1.T @ (p1 * (1 - p1)) - x0.T @ (p0 * (1 - p0))) / total
    bread = np.linalg.inv(-result.model.hessian(beta))
    d = np.zeros(total)
    d[~settled] = p1 - p0
    score = np.zeros((total, x.shape[1]))
    score[~settled] = x * (y - p)[:, None]
    influence = (d - estimate) / total + score @ bread @ gradient
    per_person = pd.Series(influence).groupby(pair["subject_id"].to_numpy()).sum().to_numpy()
    clusters = len(per_person)
    return estimate, math.sqrt(clusters / (clusters - 1) * (per_person**2).sum())


@pytest.mark.parametrize("seed", [5, 6, 7])
@pytest.mark.parametrize("categorical", [False, True])
def test_estimate_and_standard_error_equal_a_direct_computation(seed, categorical):
    rows = _ragged(seed)
    if categorical:  # as the pipeline hands them over: categoricals and integer person codes
        rows = rows.assign(
            group=rows["group"].astype("category"),
            emotion=rows["emotion"].astype("category"),
            subject_id=pd.factorize(rows["subject_id"])[0],
        )
    measure = adjusted_gap(rows, group="Black", reference="White", tolerance=0.05)
    assert not measure.undefined
    estimate, se = _direct(rows, "Black", "White")
    low, high, _ = measure.interval_at(0.95)
    assert measure.estimate == pytest.approx(estimate, rel=1e-8)
    assert (high - low) / (2 * 1.959963984540054) == pytest.approx(se, rel=1e-8)
    assert "emotions only one group shows, left out: fear" in measure.note
    assert "constant here, not adjusted for: sharpness" in measure.note
    assert f"{int(rows['contrast'].isna().sum())} face(s) without covariates left out of the fit" in measure.note


@pytest.mark.parametrize(
    "ids",
    [
        np.array([7, 3, 7, 0, 3, 9, 9, 9]),  # person codes with gaps: the table path
        np.array([-2, 5, -2, 5, 1]),  # negative: hashed
        np.array([10**12, 4, 10**12]),  # too sparse for a table: hashed
        np.array(["p1", "p0", "p1", "p2"], dtype=object),
    ],
)
def test_person_codes_group_the_same_faces_as_factorize(ids):
    codes, oracle = _clusters(ids), pd.factorize(ids)[0]
    # the same partition of the faces, numbered 0..K-1 (the numbering itself may differ)
    assert sorted(set(codes.tolist())) == list(range(len(set(oracle.tolist()))))
    assert len(set(zip(codes.tolist(), oracle.tolist(), strict=True))) == len(set(oracle.tolist()))


def test_a_design_whose_rows_are_not_sorted_by_emotion_is_refused():
    # its dummies are runs of rows: unsorted rows would silently give a different design
    with pytest.raises(ValueError, match="sorted by emotion"):
        _Design.of(group=np.zeros(3), z=np.zeros((3, 0)), emotion=np.array([1, 0, 1]))
