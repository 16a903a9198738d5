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


# -- persons with several faces --------------------------------------------------------------------


def _persons(rng: np.random.Generator, group: str, persons: int, photos: int, *, spread: float) -> pd.DataFrame:
    """Neutral faces whose anger score is 0.3 + a person's own shift (sd ``spread``, shared by all of
    their photos) + per-photo noise (sd 0.05): the planted person effect."""
    shift = np.repeat(rng.normal(0.0, spread, persons), photos)
    anger = 0.3 + shift + rng.normal(0.0, 0.05, persons * photos)
    return pd.DataFrame(
        {
            "score_anger": anger,
            "score_neutral": 1 - anger,
            "race": group,
            "emotion": "neutral",
            "outcome": "neutral",
            "subject_id": np.repeat([f"{group}-{p}" for p in range(persons)], photos),
        }
    )


def _confident(rng: np.random.Generator, group: str, persons: int, photos: int, *, spread: float) -> pd.DataFrame:
    """Top-label confidences uniform on [0.5, 0.95]; each face is right with its confidence moved on the
    logit scale by its person's shift (sd ``spread``): some persons are read well, some badly."""
    confidence = rng.uniform(0.5, 0.95, persons * photos)
    shift = np.repeat(rng.normal(0.0, spread, persons), photos)
    right = rng.random(persons * photos) < 1 / (1 + np.exp(-(np.log(confidence / (1 - confidence)) + shift)))
    return pd.DataFrame(
        {
            "score_anger": confidence,
            "score_neutral": 1 - confidence,
            "race": group,
            "emotion": np.where(right, "anger", "neutral"),
            "outcome": "anger",
            "subject_id": np.repeat([f"{group}-{p}" for p in range(persons)], photos),
        }
    )


def _measure(joined: pd.DataFrame, criterion: str, detail: str | None):
    from fer_fairness.scores import calibration_gap, score_shift

    compute = score_shift if criterion == "score_shift" else calibration_gap
    config = policy(only=(criterion,)).criterion(criterion)
    return compute(_table(joined), "Black", "White", detail, config)


def test_sandwich_variance_matches_statsmodels_and_a_direct_computation():
    import statsmodels.api as sm

    from fer_fairness.scores import sandwich_variance

    rng = np.random.default_rng(21)
    person = rng.integers(0, 15, size=120)
    y = rng.normal(size=120) + rng.normal(size=15)[person]
    sums = np.bincount(person, weights=y, minlength=15)
    n = np.bincount(person, minlength=15).astype(float)
    sums, n = sums[n > 0], n[n > 0]
    # Oracle 1: OLS on a constant with statsmodels' cluster-robust covariance (its small-sample factor
    # K / (K - 1) * (N - 1) / (N - 1) is the same K / (K - 1)).
    fit = sm.OLS(y, np.ones((len(y), 1))).fit(cov_type="cluster", cov_kwds={"groups": person})
    assert sandwich_variance(sums, n) == pytest.approx(float(fit.bse[0]) ** 2, rel=1e-10)
    # Oracle 2: by hand, each person's residual sum about the grand mean.
    residual = np.array([(y[person == p] - y.mean()).sum() for p in np.unique(person)])
    k = len(residual)
    assert sandwich_variance(sums, n) == pytest.approx(k / (k - 1) * (residual**2).sum() / len(y) ** 2)
    # One face per person: Welch's s^2 / N exactly.
    assert sandwich_variance(y, np.ones_like(y)) == pytest.approx(y.var(ddof=1) / len(y))


def test_repeated_persons_widen_score_shift_by_the_direct_formula():
    rng = np.random.default_rng(4)
    # Black: 12 persons with 6 photos each; White: 100 persons with one photo each (Welch's, untouched).
    joined = pd.concat(
        [_persons(rng, "Black", 12, 6, spread=0.06), _persons(rng, "White", 100, 1, spread=0.06)]
    ).reset_index(drop=True)
    measure = _measure(joined, "score_shift", "anger")
    black, white = (joined[joined["race"] == g]["score_anger"] for g in ("Black", "White"))
    welch = black.var(ddof=1) / len(black)
    residual = (black - black.mean()).groupby(joined["subject_id"]).sum()
    k = len(residual)
    robust = k / (k - 1) * (residual**2).sum() / len(black) ** 2
    assert robust > welch  # the planted person effect shows
    small = (scipy_stats.t.isf(0.025, k - 1) / scipy_stats.norm.isf(0.025)) ** 2  # t_{K-1}, as the counts
    variance = robust * small + white.var(ddof=1) / len(white)
    deffs = (robust / welch, 1.0)
    low, high, _ = measure.interval_at(0.95)
    half = scipy_stats.norm.isf(0.025) * math.sqrt(variance)
    assert (low, high) == pytest.approx((measure.estimate - half, measure.estimate + half))
    assert measure.inference == (
        f"clustered by subject (design effect {deffs[0]:.2f}, {deffs[1]:.2f}; sandwich variance by subject)"
    )
    assert "independent" not in measure.note


def test_per_person_sums_and_bins_match_a_groupby():
    rng = np.random.default_rng(12)
    joined = pd.concat([_confident(rng, g, 9, 5, spread=1.0) for g in ("Black", "White")]).reset_index(drop=True)
    joined.loc[joined.index[::7], "subject_id"] = None  # a face without a subject is a person of its own
    persons = _table(joined).scores.persons
    for g, group in enumerate(("Black", "White")):
        rows = joined[joined["race"] == group]
        who = rows["subject_id"].fillna(pd.Series(rows.index.astype(str), index=rows.index))
        not_anger = rows["emotion"] != "anger"
        sums, n = persons.per_person(g, [BASIC_SEVEN.index("neutral")], 0)
        expected = rows[not_anger].groupby(who[not_anger], sort=False)["score_anger"].agg(["sum", "size"])
        np.testing.assert_allclose(
            sorted(zip(sums, n, strict=True)), sorted(expected.itertuples(index=False, name=None))
        )
        count, confidence, correct = persons.bins(g)
        b = np.minimum(np.floor(rows["score_anger"] * BINS), BINS - 1).astype(int)
        oracle = rows.assign(b=b, right=rows["emotion"] == "anger").groupby(who)
        assert len(count) == who.nunique()
        assert sorted(map(tuple, count)) == sorted(
            tuple(np.bincount(f["b"], minlength=BINS).astype(float)) for _, f in oracle
        )
        assert sorted(correct.sum(axis=1)) == sorted(f["right"].sum() for _, f in oracle)
        assert confidence.sum() == pytest.approx(rows["score_anger"].sum())
    measure = _measure(joined, "calibration_gap", None)
    assert measure.inference == (
        f"clustered by subject (persons resampled by the bootstrap: {persons.bins(0)[0].shape[0]} in Black, "
        f"{persons.bins(1)[0].shape[0]} in White)"
    )


@pytest.mark.parametrize("criterion", ["score_shift", "calibration_gap"])
def test_one_face_per_person_gives_exactly_the_independent_result(criterion):
    rng = np.random.default_rng(9)
    joined = pd.concat([_faces(rng, 400, "Black", temperature=0.7), _faces(rng, 500, "White")])
    joined = joined.reset_index(drop=True)
    # Every face its own person; one person shown in both groups stays one person per group.
    subjects = [f"p{i}" for i in range(len(joined))]
    subjects[0] = subjects[len(joined) - 1]
    records = {}
    for name, frame in {"none": joined, "unique": joined.assign(subject_id=subjects)}.items():
        records[name] = evaluate([_table(frame)], thresholds=policy(only=(criterion,)), seed=0)
    table = _table(joined.assign(subject_id=subjects))
    assert table.scores.persons is None
    assert records["none"] == records["unique"]
    for record in records["unique"]:
        assert record.inference == "independent images"
        assert "independent" not in record.note


def _coverage(draws: int, *, seed: int) -> dict[str, float]:
    """How often each 95% interval covers the true difference 0, clustered and as if faces were
    independent, with a planted person effect (ICC 0.5 for the scores)."""
    rng = np.random.default_rng(seed)
    hits = {"shift clustered": 0, "shift independent": 0, "calibration clustered": 0, "calibration independent": 0}
    for draw in range(draws):
        shift = pd.concat([_persons(rng, g, 20, 8, spread=0.05) for g in ("Black", "White")])
        calibration = pd.concat([_confident(rng, g, 30, 10, spread=2.0) for g in ("Black", "White")])
        for kind, joined, criterion, detail in (
            ("shift", shift, "score_shift", "anger"),
            ("calibration", calibration, "calibration_gap", None),
        ):
            if kind == "calibration" and draw % 2:
                continue  # the bootstrap costs more: every other draw
            for inference, frame in (("clustered", joined), ("independent", joined.drop(columns="subject_id"))):
                low, high, _ = _measure(frame, criterion, detail).interval_at(0.95)
                hits[f"{kind} {inference}"] += low <= 0 <= high
    return {k: v / (draws if k.startswith("shift") else (draws + 1) // 2) for k, v in hits.items()}


def test_a_planted_person_effect_is_covered_when_persons_are_counted_once():
    # 120 draws (60 for calibration), about 6 s. Measured in the slow run (1,000 draws): clustered
    # 0.951 (shift) and 0.908 (calibration); as if faces were independent 0.649 and 0.696.
    rates = _coverage(120, seed=31)
    assert rates["shift clustered"] >= 0.88 and rates["shift independent"] <= 0.8
    assert rates["calibration clustered"] >= 0.8 and rates["calibration independent"] <= 0.82


@pytest.mark.slow
def test_a_planted_person_effect_is_covered_nominally_over_many_draws():
    # 1,000 draws (500 for calibration), about 45 s. A standard error of about 0.007 (shift) and 0.012
    # (calibration) at 0.95. The calibration bootstrap over 30 persons runs a little short of nominal
    # (about 0.91 measured; the parametric bootstrap over bins: 0.69).
    rates = _coverage(1000, seed=32)
    assert 0.93 <= rates["shift clustered"] <= 0.975
    assert rates["shift independent"] <= 0.72
    assert 0.87 <= rates["calibration clustered"] <= 0.98
    assert rates["calibration independent"] <= 0.75
