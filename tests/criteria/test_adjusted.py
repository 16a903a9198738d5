"""adjusted_gap, planted: a gap caused by lighting is explained by it; a gap planted on the group survives.

The oracle is the planting (which variable drives correctness), statsmodels' own predictions for the
marginal standardisation, and a bootstrap of that independent computation for the interval's width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy.special import expit

from fer_fairness import pipeline
from fer_fairness.counts import Coded, build_counts
from fer_fairness.criteria.adjusted import adjusted_gap
from fer_fairness.criteria.evaluate import Table, evaluate
from fer_fairness.criteria.verdict import Verdict

from ._build import policy
from .coherence import assert_coherent

EMOTIONS = ("anger", "happiness", "neutral")
COVARIATE_COLUMNS = ("luminance", "contrast", "sharpness", "resolution", "face_box")


def _faces(*, n: int, seed: int, dark: float, logit) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` faces per group; group Black photographed at mean luminance ``dark`` (White at 0.6);
    ``logit(group_is_black, luminance, emotion_index)`` sets each face's chance of being read right."""
    rng = np.random.default_rng(seed)
    race = np.repeat(["Black", "White"], n)
    black = race == "Black"
    luminance = np.clip(np.where(black, rng.normal(dark, 0.12, 2 * n), rng.normal(0.6, 0.12, 2 * n)), 0.01, 0.99)
    emotion_index = rng.integers(0, len(EMOTIONS), 2 * n)
    emotion = np.array(EMOTIONS)[emotion_index]
    correct = rng.random(2 * n) < expit(logit(black, luminance, emotion_index))
    wrong = np.array(EMOTIONS)[(emotion_index + 1) % len(EMOTIONS)]
    ids = [f"s{i}" for i in range(2 * n)]
    joined = pd.DataFrame(
        {
            "sample_id": ids,
            "subject_id": ids,
            "race": race,
            "emotion": emotion,
            "outcome": np.where(correct, emotion, wrong),
        }
    )
    values = pd.DataFrame(
        {
            "luminance": luminance,
            "contrast": rng.normal(0.2, 0.05, 2 * n),  # noise, alike in both groups
            "sharpness": rng.gamma(2.0, 1.0, 2 * n),
            "resolution": 100.0 * 100.0,  # one size for all: constant, so not adjusted for
            "face_box": np.nan,  # no loader box here
        },
        index=pd.Index(ids, name="sample_id"),
    )
    return joined, values


def _rows_of_faces(joined: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """The rows the pipeline builds for the grouping by race (covariates in the faces' order)."""
    coded = Coded.of(joined, ["race", "emotion", "outcome"])
    return pipeline._rows(coded, ("race",), *pipeline._faces(coded, values))


def _table(joined: pd.DataFrame, values: pd.DataFrame) -> Table:
    tensor = build_counts(joined, attributes=("race",), labels=EMOTIONS)
    rows = _rows_of_faces(joined, values)
    return Table(model="m", dataset="d", tensor=tensor, pairs=(("Black", "White"),), rows=rows)


def _records(table: Table):
    records = evaluate([table], thresholds=policy(only=("accuracy_gap", "adjusted_gap")), seed=0)
    for record in records:  # each verdict follows from its own printed interval, band and inference
        assert_coherent(record, target_power=0.8)
    return {r.criterion: r for r in records}


def test_a_gap_caused_by_lighting_fails_unadjusted_and_not_adjusted():
    # Correctness depends on luminance alone; Black faces are photographed darker.
    joined, values = _faces(n=2000, seed=1, dark=0.4, logit=lambda black, lum, e: -2.0 + 6.0 * lum)
    records = _records(_table(joined, values))
    assert records["accuracy_gap"].verdict is Verdict.FAIL
    assert records["accuracy_gap"].estimate < -0.15
    adjusted = records["adjusted_gap"]
    assert adjusted.verdict is not Verdict.FAIL
    assert abs(adjusted.estimate) < 0.05
    assert "the covariates explain the disparity" in adjusted.note
    assert "constant here, not adjusted for: resolution" in adjusted.note
    # the record reports the unadjusted accuracies beside the adjusted difference
    assert adjusted.rates["Black"] - adjusted.rates["White"] == pytest.approx(records["accuracy_gap"].estimate)


def test_a_gap_planted_on_the_group_survives_adjustment():
    # Same photographs for both groups; the model is simply worse on Black faces.
    joined, values = _faces(n=2000, seed=2, dark=0.6, logit=lambda black, lum, e: 1.0 - 1.2 * black + 0.5 * lum)
    records = _records(_table(joined, values))
    assert records["accuracy_gap"].verdict is Verdict.FAIL
    adjusted = records["adjusted_gap"]
    assert adjusted.verdict is Verdict.FAIL and adjusted.ci_high < -0.05
    assert "the disparity survives adjustment" in adjusted.note


def _oracle(rows: pd.DataFrame) -> float:
    """Marginal standardisation straight from statsmodels: fit, predict everyone as each group, average."""
    # plain strings: patsy would give an unused category of a categorical column its own (empty) dummy
    data = rows.assign(
        correct=rows["correct"].astype(float), group=rows["group"].astype(str), emotion=rows["emotion"].astype(str)
    )
    fit = smf.logit(
        "correct ~ C(group, Treatment('White')) + luminance + contrast + sharpness + C(emotion)", data=data
    ).fit(disp=0)
    as_black = fit.predict(data.assign(group="Black"))
    as_white = fit.predict(data.assign(group="White"))
    return float(as_black.mean() - as_white.mean())


def test_marginal_standardisation_matches_statsmodels_predictions():
    joined, values = _faces(
        n=400, seed=3, dark=0.45, logit=lambda black, lum, e: 0.3 - 0.5 * black + 3.0 * lum - 0.4 * e
    )
    rows = _rows_of_faces(joined, values)
    measure = adjusted_gap(rows, group="Black", reference="White", tolerance=0.05)
    assert measure.estimate == pytest.approx(_oracle(rows), abs=1e-6)


def test_the_interval_width_matches_a_bootstrap_of_the_direct_computation():
    joined, values = _faces(n=300, seed=4, dark=0.45, logit=lambda black, lum, e: 0.3 - 0.5 * black + 3.0 * lum)
    rows = _rows_of_faces(joined, values)
    measure = adjusted_gap(rows, group="Black", reference="White", tolerance=0.05)
    low, high, _ = measure.interval_at(0.95)
    delta_se = (high - low) / (2 * 1.959964)
    rng = np.random.default_rng(5)
    draws = []
    for _ in range(200):
        # resample within each group, as the design fixes the group sizes
        pick = np.concatenate([rng.choice(np.flatnonzero(rows["group"] == g), 300) for g in ("Black", "White")])
        draws.append(_oracle(rows.iloc[pick].reset_index(drop=True)))
    assert delta_se == pytest.approx(float(np.std(draws, ddof=1)), rel=0.2)


def _rows_of(correct_black, correct_white, *, luminance=None, emotions=("anger",)):
    n_black, n_white = len(correct_black), len(correct_white)
    n = n_black + n_white
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "group": ["Black"] * n_black + ["White"] * n_white,
            "emotion": [emotions[i % len(emotions)] for i in range(n)],
            "correct": np.concatenate([correct_black, correct_white]).astype(bool),
            "subject_id": [f"s{i}" for i in range(n)],
            "luminance": rng.random(n) if luminance is None else luminance,
            "contrast": rng.random(n),
        }
    )


def test_degenerate_fits_are_undefined_with_their_reason():
    rng = np.random.default_rng(0)
    # The group decides correctness exactly (every Black face right, every White face wrong).
    separated = _rows_of(np.ones(60), np.zeros(60))
    assert "perfect separation" in adjusted_gap(separated, group="Black", reference="White", tolerance=0.05).undefined
    # A covariate that is the group itself: the group's effect cannot be separated from it.
    aliased = _rows_of(rng.random(60) < 0.5, rng.random(60) < 0.5, luminance=np.repeat([0.2, 0.7], 60))
    why = adjusted_gap(aliased, group="Black", reference="White", tolerance=0.05).undefined
    assert why.startswith("the group cannot be told apart from the covariates")
    # No rows at all (a table built from counts).
    assert "no per-sample rows" in adjusted_gap(None, group="Black", reference="White", tolerance=0.05).undefined
    # Each group shows one emotion, a different one: nothing to compare within an emotion.
    apart = _rows_of(rng.random(60) < 0.5, rng.random(60) < 0.5)
    apart["emotion"] = np.repeat(["anger", "happiness"], 60)
    measure = adjusted_gap(apart, group="Black", reference="White", tolerance=0.05)
    assert measure.undefined == "the two groups share no emotion with covariates known"
    assert "emotions only one group shows, left out: anger, happiness" in measure.note
    # No covariates known (images absent).
    blank = _rows_of(rng.random(60) < 0.5, rng.random(60) < 0.5).assign(luminance=np.nan, contrast=np.nan)
    assert "no image covariates" in adjusted_gap(blank, group="Black", reference="White", tolerance=0.05).undefined


def test_an_emotion_read_right_every_time_is_fitted_out_not_a_degenerate_fit():
    # happiness is always right in both groups: its coefficient would be infinite; its faces add 0.
    joined, values = _faces(n=400, seed=6, dark=0.45, logit=lambda black, lum, e: np.where(e == 1, 50.0, lum - black))
    rows = _rows_of_faces(joined, values)
    assert rows.loc[rows["emotion"] == "happiness", "correct"].all()
    measure = adjusted_gap(rows, group="Black", reference="White", tolerance=0.05)
    assert not measure.undefined
    rest = rows[rows["emotion"] != "happiness"]
    # the limit: over the other emotions the effect is statsmodels', diluted by the always-right faces
    assert measure.estimate == pytest.approx(_oracle(rest) * len(rest) / len(rows), abs=1e-6)


def test_a_degenerate_fit_is_an_inconclusive_record_never_a_crash():
    joined, values = _faces(n=100, seed=7, dark=0.45, logit=lambda black, lum, e: np.where(black, 40.0, -40.0))
    record = _records(_table(joined, values))["adjusted_gap"]
    assert record.verdict is Verdict.INCONCLUSIVE and record.rule == "undefined"
    assert "perfect separation" in record.reason


def test_faces_of_one_person_count_as_one_persons_evidence():
    # 5 photos per person, and each person is read well or badly as a whole (a person effect).
    joined, values = _faces(n=1000, seed=8, dark=0.5, logit=lambda black, lum, e: 0.5 * black + lum)
    person = np.arange(len(joined)) // 5
    shift = np.random.default_rng(9).normal(0, 2.0, person.max() + 1)[person]
    emotion = joined["emotion"].to_numpy()
    right = np.random.default_rng(10).random(len(joined)) < expit(0.5 + shift)
    joined = joined.assign(subject_id=[f"p{p}" for p in person], outcome=np.where(right, emotion, "anger"))
    joined.loc[~right & (emotion == "anger"), "outcome"] = "neutral"
    table = _table(joined, values)
    record = _records(table)["adjusted_gap"]
    assert_coherent(record, target_power=0.8)
    assert record.inference.startswith("clustered by subject (design effect ")
    assert float(record.inference.split("design effect ")[1].split(";")[0]) > 1.5


def test_rows_leave_out_faces_without_an_answer_and_keep_each_faces_own_covariates():
    # Oracle: the joined table filtered in pandas, covariates looked up by sample id. Faces with no
    # answer (NOT_EVALUATED), a person with two photos and a person without a subject id are mixed in.
    from fer_fairness.labels import NOT_EVALUATED

    joined, values = _faces(n=30, seed=9, dark=0.45, logit=lambda black, lum, e: lum - black)
    joined.loc[[3, 17, 40], "outcome"] = NOT_EVALUATED
    joined.loc[5, "subject_id"] = joined.loc[4, "subject_id"]
    joined.loc[8, "subject_id"] = None
    rows = _rows_of_faces(joined, values)
    kept = joined[joined["outcome"] != NOT_EVALUATED]
    assert len(rows) == len(joined) - 3
    assert rows["group"].astype(str).tolist() == kept["race"].tolist()
    assert rows["emotion"].astype(str).tolist() == kept["emotion"].tolist()
    assert rows["correct"].tolist() == (kept["outcome"] == kept["emotion"]).tolist()
    for column in ("luminance", "contrast", "sharpness"):
        assert rows[column].tolist() == values.loc[kept["sample_id"], column].tolist()
    people = rows["subject_id"].to_numpy()
    position = {sample: i for i, sample in enumerate(kept["sample_id"])}
    assert people[position["s4"]] == people[position["s5"]]  # one person, two photos
    assert len(set(people)) == len(rows) - 1  # everyone else, the blank subject too, a person of their own
