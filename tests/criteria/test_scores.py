"""score_shift and calibration_gap on simulated scores, through the same summary the pipeline builds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from fer_fairness.counts import build_counts
from fer_fairness.criteria.evaluate import Table, evaluate
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.labels import BASIC_SEVEN
from fer_fairness.scores import BINS, summarise, with_scores

from ._build import policy
from .coherence import assert_coherent

PER_GROUP = 2000


def _faces(rng: np.random.Generator, n: int, group: str, *, temperature: float = 1.0) -> pd.DataFrame:
    """Faces whose true emotion is drawn from the model's own probabilities (so those are calibrated);
    the scores reported are those probabilities sharpened by ``temperature`` < 1 (overconfident)."""
    logits = rng.normal(0.0, 1.5, size=(n, len(BASIC_SEVEN)))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(len(BASIC_SEVEN), p=row) for row in p])
    shown = np.exp(logits / temperature) / np.exp(logits / temperature).sum(axis=1, keepdims=True)
    frame = pd.DataFrame({f"score_{e}": shown[:, k] for k, e in enumerate(BASIC_SEVEN)})
    return frame.assign(
        race=group,
        emotion=[BASIC_SEVEN[k] for k in truth],
        outcome=[BASIC_SEVEN[k] for k in shown.argmax(axis=1)],
    )


def _table(joined: pd.DataFrame, *, scored: bool = True) -> Table:
    joined = joined.reset_index(drop=True).assign(sample_id=lambda f: [f"s{i}" for i in range(len(f))])
    tensor = build_counts(joined, attributes=("race",), labels=BASIC_SEVEN)
    scores = summarise(joined, attributes=("race",), groups=tensor.groups, labels=tensor.labels) if scored else None
    return Table(model="m", dataset="d", tensor=tensor, pairs=(("Black", "White"),), scores=scores)


def _ece_from_rows(frame: pd.DataFrame, *, debiased: bool) -> float:
    """The oracle: ECE straight from the rows (top score, its bin, right or not); ``debiased`` takes
    each bin's squared gap less acc (1 - acc) / (n - 1), floored at 0 (Kumar et al. 2019)."""
    s = frame[[f"score_{e}" for e in BASIC_SEVEN]].to_numpy()
    confidence = s.max(axis=1)
    right = np.array(BASIC_SEVEN)[s.argmax(axis=1)] == frame["emotion"].to_numpy()
    bins = np.minimum(np.floor(confidence * BINS), BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        here = bins == b
        n, accuracy = here.sum(), right[here].mean()
        gap = (accuracy - confidence[here].mean()) ** 2
        if debiased and n > 1:
            gap -= accuracy * (1 - accuracy) / (n - 1)
        total += n * math.sqrt(max(gap, 0.0))
    return total / len(frame)


def _calibration(black_temperature: float):
    rng = np.random.default_rng(7)
    black = _faces(rng, PER_GROUP, "Black", temperature=black_temperature)
    white = _faces(rng, PER_GROUP, "White")
    records = evaluate([_table(pd.concat([black, white]))], thresholds=policy(only=("calibration_gap",)), seed=0)
    (record,) = records
    return record, black, white


def test_calibrated_model_does_not_fail_calibration_gap():
    record, black, white = _calibration(black_temperature=1.0)
    assert record.rates == {
        "Black": pytest.approx(_ece_from_rows(black, debiased=True)),
        "White": pytest.approx(_ece_from_rows(white, debiased=True)),
    }
    plain = f"plain ECE {_ece_from_rows(black, debiased=False):.3f} vs {_ece_from_rows(white, debiased=False):.3f}"
    assert plain in record.note
    assert record.verdict is Verdict.PASS and record.ci_low < 0 < record.ci_high
    assert_coherent(record, target_power=0.8)


def test_overconfident_for_one_group_fails_calibration_gap():
    record, black, white = _calibration(black_temperature=0.4)
    assert record.rates["Black"] == pytest.approx(_ece_from_rows(black, debiased=True))
    assert record.rates["Black"] > 0.1 > record.rates["White"]
    assert record.verdict is Verdict.FAIL and record.ci_low > 0.05
    brier = (
        (
            (
                black[[f"score_{e}" for e in BASIC_SEVEN]].to_numpy()
                - pd.get_dummies(black["emotion"])[list(BASIC_SEVEN)].to_numpy(dtype=float)
            )
            ** 2
        )
        .sum(axis=1)
        .mean()
    )
    assert f"Brier score {brier:.3f}" in record.note
    assert_coherent(record, target_power=0.8)


def _shift(anger_on_black_neutral: float):
    """Every face scores 0.1 anger give or take noise; Black neutral faces get ``anger_on_black_neutral`` more."""
    rng = np.random.default_rng(3)
    rows = []
    for group in ("Black", "White"):
        for emotion in BASIC_SEVEN:
            s = rng.dirichlet(np.ones(len(BASIC_SEVEN)) * 5, size=150)
            if group == "Black" and emotion == "neutral":
                s[:, 0] += anger_on_black_neutral
            frame = pd.DataFrame({f"score_{e}": s[:, k] for k, e in enumerate(BASIC_SEVEN)})
            rows.append(frame.assign(race=group, emotion=emotion, outcome=emotion))
    joined = pd.concat(rows)
    records = evaluate([_table(joined)], thresholds=policy(only=("score_shift",)), seed=0)
    return {r.detail: r for r in records}, joined


def test_anger_score_raised_on_one_groups_neutral_faces_fails_score_shift():
    records, joined = _shift(anger_on_black_neutral=0.5)
    anger = records["anger"]
    # The oracle: Welch's t from scipy on the rows themselves (its statistic is difference / standard error).
    not_anger = joined[joined["emotion"] != "anger"]
    a = not_anger.loc[not_anger["race"] == "Black", "score_anger"]
    b = not_anger.loc[not_anger["race"] == "White", "score_anger"]
    welch = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert anger.estimate == pytest.approx(a.mean() - b.mean())
    se = anger.estimate / welch.statistic
    z = scipy_stats.norm.isf((1 - anger.confidence) / 2)
    assert (anger.ci_low, anger.ci_high) == pytest.approx((anger.estimate - z * se, anger.estimate + z * se))
    assert anger.n == {"Black": len(a), "White": len(b)}
    assert anger.verdict is Verdict.FAIL
    # Nothing else moved: no other emotion's score shifts.
    assert all(r.verdict is not Verdict.FAIL for e, r in records.items() if e != "anger")
    for record in records.values():
        assert_coherent(record, target_power=0.8)


def test_equal_scores_do_not_fail_score_shift():
    records, _ = _shift(anger_on_black_neutral=0.0)
    assert all(r.verdict is not Verdict.FAIL for r in records.values())


def test_a_model_without_scores_is_inconclusive_never_pass():
    rng = np.random.default_rng(1)
    joined = pd.concat([_faces(rng, 300, "Black"), _faces(rng, 300, "White")])
    plain = joined[["race", "emotion", "outcome"]]
    outcomes = plain.assign(sample_id=[f"s{i}" for i in range(len(plain))])
    assert with_scores(outcomes, outcomes[["sample_id"]]).equals(outcomes)  # nothing to add
    assert summarise(outcomes, attributes=("race",), groups=("Black", "White"), labels=BASIC_SEVEN) is None
    records = evaluate(
        [_table(plain, scored=False)], thresholds=policy(only=("score_shift", "calibration_gap")), seed=0
    )
    assert {r.criterion for r in records} == {"score_shift", "calibration_gap"} and len(records) == 8
    for record in records:
        assert record.verdict is Verdict.INCONCLUSIVE and record.rule == "undefined"
        assert "model m gives no per-label scores" in record.reason


def test_with_scores_carries_the_score_columns_into_the_joined_frame():
    samples = pd.DataFrame({"sample_id": ["a", "b"], "race": ["x", "y"], "emotion": ["anger", "fear"]})
    outcomes = pd.DataFrame({"sample_id": ["b", "a"], "outcome": ["fear", "anger"], "score_anger": [0.2, 0.9]})
    joined = with_scores(samples.assign(outcome=["anger", "fear"]), outcomes)
    assert joined.set_index("sample_id")["score_anger"].to_dict() == {"a": 0.9, "b": 0.2}


def test_a_small_calibrated_group_does_not_look_worse_calibrated_for_its_size():
    # Plain ECE grows as bins empty: at 150 vs 1,500 faces of one calibrated model, its difference
    # averages about +0.05 (simulated). The debiased, bias-corrected estimate must stay near 0.
    estimates = []
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        joined = pd.concat([_faces(rng, 150, "Black"), _faces(rng, 1500, "White")])
        (record,) = evaluate([_table(joined)], thresholds=policy(only=("calibration_gap",)), seed=0)
        estimates.append(record.estimate)
        assert record.verdict is not Verdict.FAIL
    assert abs(np.mean(estimates)) < 0.015
