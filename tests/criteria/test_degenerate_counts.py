"""No count pattern crashes evaluation, and every verdict follows from its own interval.

Zeros, empty rows, missing emotions, all-right and all-wrong strata, a lone group, huge counts:
``evaluate`` must return a coherent record for each (tests/criteria/coherence.py), and the named
cases below say what the numbers must be, computed here directly from the counts.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact, norm

from fer_fairness.criteria.evaluate import evaluate
from fer_fairness.criteria.records import Record
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.labels import BASIC_SEVEN, NON_ANSWERS

from ._build import policy, table
from .coherence import assert_coherent, violations

# -- the checker itself can fail ---------------------------------------------------------------

COHERENT_FAIL = {
    "test_id": "m|d|race=Black~White",
    "criterion": "accuracy_gap",
    "verdict": "FAIL",
    "rule": "outside",
    "mode": "harm",
    "estimate": -0.12,
    "ci_low": -0.18,
    "ci_high": -0.06,
    "confidence": 0.95,
    "band_low": -0.05,
    "band_high": 0.05,
    "null": 0.0,
    "p_value": 0.001,
    "p_adjusted": 0.002,
    "power": None,
    "inference": "independent images",
    "rates": {"Black": 0.6, "White": 0.72},
    "reason": "accuracy difference for race=Black vs White: FAIL, the whole corrected interval lies outside "
    "the band. estimate -0.120; 95% CI [-0.180, -0.060]; p = 0.001",
}


def test_the_checker_accepts_a_coherent_record():
    assert violations(COHERENT_FAIL, target_power=0.8) == []


@pytest.mark.parametrize(
    "change",
    [
        {"verdict": "PASS"},  # verdict against its rule
        {"rule": "inside", "verdict": "PASS"},  # rule against the numbers
        {"ci_high": 0.01},  # FAIL with an interval that reaches into the band
        {"estimate": -0.2},  # an interval that misses its own estimate
        {"null": 1.0},  # a difference whose no-disparity value is not 0
        {"confidence": 1.0},
        {"p_adjusted": 1.5},
        {"p_value": math.nan},
        {"power": math.nan},  # no NaN anywhere in a decided record
        {"rates": {"Black": math.nan, "White": 0.72}},
        {"inference": "whatever"},
        {"reason": COHERENT_FAIL["reason"].replace("FAIL", "verdict")},
        {"reason": COHERENT_FAIL["reason"].replace("-0.060]", "-0.030]")},  # prints another interval
        {"rule": "undefined", "verdict": "INCONCLUSIVE"},  # undefined, but the reason says nothing of it
        {"rule": "powered", "verdict": "PASS", "estimate": 0.0, "ci_low": -0.08, "ci_high": 0.08, "power": 0.5},
    ],
)
def test_the_checker_rejects_each_contradiction(change):
    assert violations({**COHERENT_FAIL, **change}, target_power=0.8) != []


def test_the_checker_reads_json_infinities_and_a_powered_pass():
    spread = {
        **COHERENT_FAIL,
        "criterion": "association",
        "verdict": "PASS",
        "rule": "inside",
        "estimate": 0.03,
        "ci_low": 0.01,
        "ci_high": 0.07,
        "band_low": "-inf",
        "band_high": 0.1,
        "reason": "spread: PASS. estimate 0.030; 95% CI [0.010, 0.070]",
    }
    assert violations(spread, target_power=0.8) == []
    powered = {
        **COHERENT_FAIL,
        "verdict": "PASS",
        "rule": "powered",
        "estimate": 0.01,
        "ci_low": -0.07,
        "ci_high": 0.09,
        "power": 0.85,
        "reason": "PASS. estimate 0.010; 95% CI [-0.070, 0.090]",
    }
    assert violations(powered, target_power=0.8) == []
    assert violations({**powered, "mode": "equivalence"}, target_power=0.8) != []  # equivalence has no power rule


# -- a property over random counts and policies ------------------------------------------------

LARGE = 100_000


@st.composite
def count_tables(draw, *, attribute: str = "race"):
    """Counts biased toward the degenerate: zeros, empty rows, all-right or all-wrong rows, huge cells."""
    groups = tuple(f"g{i}" for i in range(draw(st.integers(1, 4))))
    labels = tuple(draw(st.lists(st.sampled_from(BASIC_SEVEN), min_size=1, max_size=4, unique=True)))
    outcomes = labels + NON_ANSWERS
    cell = st.one_of(st.just(0), st.integers(0, 3), st.integers(0, 60), st.integers(0, LARGE))
    positive = st.one_of(st.integers(1, 3), st.integers(1, 60), st.integers(1, LARGE))
    counts = {}
    for group in groups:
        rows = {}
        for true in labels:
            shape = draw(st.sampled_from(["empty", "all-correct", "all-wrong", "mixed", "mixed"]))
            wrong = [o for o in outcomes if o != true]
            if shape == "all-correct":
                rows[true] = {true: draw(positive)}
            elif shape == "all-wrong":
                rows[true] = {o: draw(cell) for o in draw(st.lists(st.sampled_from(wrong), min_size=1, unique=True))}
            elif shape == "mixed":
                rows[true] = {o: draw(cell) for o in outcomes}
        counts[group] = rows
    return table(counts, labels=labels, reference=draw(st.sampled_from(groups)), attribute=attribute)


policies = st.builds(
    lambda mode, correction, family, minimum, power, gap, ratio: policy(
        settings={
            "mode": mode,
            "correction": correction,
            "family": family,
            "min_group_size": minimum,
            "power": power,
        },
        accuracy_gap={"tolerance": gap},
        confusion_ratio={"tolerance": ratio},
    ),
    st.sampled_from(["harm", "equivalence"]),
    st.sampled_from(["holm", "bh"]),
    st.sampled_from(["gate", "criterion", "run"]),
    st.integers(1, 50),
    st.sampled_from([0.6, 0.8, 0.95]),
    st.sampled_from([0.01, 0.05, 0.2]),
    st.sampled_from([1.1, 1.5, 3.0]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    first=count_tables(),
    second=st.none() | count_tables(attribute="gender"),
    thresholds=policies,
    seed=st.integers(0, 9),
)
def test_no_count_pattern_crashes_and_every_verdict_follows_from_its_interval(first, second, thresholds, seed):
    tables = [first] if second is None else [first, second]  # two tables: a "run" family spans both
    records = evaluate(tables, thresholds=thresholds, seed=seed)
    assert records
    for record in records:
        assert_coherent(record, target_power=thresholds.power)
        document = json.loads(json.dumps(record.to_dict(), allow_nan=False))  # what fairness.json holds
        assert_coherent(document, target_power=thresholds.power)
        assert Record.from_dict(document).verdict is record.verdict


# -- named cases --------------------------------------------------------------------------------

DEFAULT = policy()


def _evaluate(counts, *, labels, reference="White", thresholds=DEFAULT) -> dict[str, Record]:
    records = evaluate([table(counts, labels=labels, reference=reference)], thresholds=thresholds, seed=0)
    for record in records:
        assert_coherent(record, target_power=thresholds.power)
    return {f"{r.criterion}|{r.test_id}": r for r in records}


def _z(record: Record) -> float:
    return float(norm.ppf(1 - (1 - record.confidence) / 2))


def test_zero_rows_everywhere_are_inconclusive_never_a_crash():
    zero = {"anger": {"anger": 0}, "fear": {"fear": 0}}
    records = _evaluate({"Black": zero, "White": zero}, labels=("anger", "fear"))
    assert records and all(r.verdict is Verdict.INCONCLUSIVE and r.rule == "undefined" for r in records.values())


def test_a_zero_cell_gives_the_observed_difference():
    counts = {
        "Black": {"anger": {"anger": 97, "refused": 3}},
        "White": {"anger": {"anger": 100}},  # never refused: a zero cell
    }
    record = _evaluate(counts, labels=("anger",))["non_answer_gap|m|d|race=Black~White"]
    assert record.estimate == pytest.approx(3 / 100 - 0 / 100)
    assert record.rates == pytest.approx({"Black": 0.03, "White": 0.0})


def test_all_correct_strata_in_both_groups():
    counts = {
        "Black": {"anger": {"anger": 60}, "fear": {"fear": 40}},
        "White": {"anger": {"anger": 50}, "fear": {"fear": 50}},
    }
    records = _evaluate(counts, labels=("anger", "fear"))
    gap = records["accuracy_gap|m|d|race=Black~White"]
    assert gap.estimate == 0.0
    # Newcombe 1998 at p1 = p0 = 1: the bounds are the Wilson lower bounds' distances from 1.
    z = _z(gap)
    wilson_low = 1 / (1 + z**2 / 100)
    assert gap.ci_low == pytest.approx(-(1 - wilson_low)) and gap.ci_high == pytest.approx(1 - wilson_low)
    # +-0.037 at 95% (a family of one); wider at the corrected level of a larger family.
    assert gap.verdict is (Verdict.PASS if 1 - wilson_low <= 0.05 else Verdict.INCONCLUSIVE)
    [alone] = _evaluate(counts, labels=("anger", "fear"), thresholds=policy(only=("accuracy_gap",))).values()
    assert alone.confidence == pytest.approx(0.95) and alone.verdict is Verdict.PASS
    for group in ("Black", "White"):
        floor = records[f"accuracy_floor|m|d|race={group}"]
        assert floor.estimate == 1.0 and floor.verdict is Verdict.PASS and floor.rule == "inside"


def test_all_wrong_strata_in_both_groups():
    counts = {
        "Black": {"anger": {"disgust": 40}, "disgust": {"anger": 40}},
        "White": {"anger": {"disgust": 50}, "disgust": {"anger": 50}},
    }
    records = _evaluate(counts, labels=("anger", "disgust"))
    for group, n in (("Black", 80), ("White", 100)):
        floor = records[f"accuracy_floor|m|d|race={group}"]
        z = _z(floor)
        assert floor.estimate == 0.0
        assert floor.ci_high == pytest.approx((z**2 / n) / (1 + z**2 / n))  # Wilson upper bound at p = 0
        assert floor.verdict is Verdict.FAIL and floor.rule == "outside"  # the whole interval is below 0.5
    # Every anger face read as disgust in both groups (40/40 vs 50/50): the ratio is 1, never exactly.
    ratio = records["confusion_ratio|m|d|race=Black~White|anger->disgust"]
    assert ratio.estimate == 1.0 and ratio.verdict is not Verdict.FAIL
    assert ratio.rule == "undefined" or ratio.ci_low < 1 < ratio.ci_high


def _assert_rate_one_is_not_certain(record: Record):
    assert record.rates in ({}, pytest.approx({"Black": 1.0, "White": 1.0}))
    assert record.verdict is not Verdict.PASS, "an interval [1, 1] claims a certainty the counts do not give"
    assert record.verdict is Verdict.INCONCLUSIVE
    if record.rule == "undefined":
        assert record.reason
    else:
        assert record.ci_low < 1 < record.ci_high


def test_a_confusion_rate_of_one_in_both_groups_is_not_a_pass():
    counts = {
        "Black": {"anger": {"disgust": 2}, "happiness": {"happiness": 40}},  # 2 of 2 anger faces read as disgust
        "White": {"anger": {"disgust": 30}, "happiness": {"happiness": 40}},  # 30 of 30
    }
    records = _evaluate(counts, labels=("anger", "disgust", "happiness"))
    _assert_rate_one_is_not_certain(records["confusion_ratio|m|d|race=Black~White|anger->disgust"])


def test_a_zero_cell_ratio_shows_the_observed_ratio_with_a_valid_interval():
    counts = {
        "Black": {"anger": {"anger": 200}},  # 0 of 200 anger faces read as disgust
        "White": {"anger": {"anger": 198, "disgust": 2}},  # 2 of 200: 1%
    }
    thresholds = policy(only=("confusion_ratio",), confusion_ratio={"pairs": ["anger->disgust"]})
    [record] = _evaluate(counts, labels=("anger", "disgust"), thresholds=thresholds).values()
    assert record.estimate == 0.0  # (0/200) / (2/200), not the +0.5-corrected 0.2
    assert record.count_ratio == 0.0
    assert record.rates == pytest.approx({"Black": 0.0, "White": 0.01})
    # The interval inverts a test that cannot tell 0/200 from 2/200: it must hold parity.
    assert fisher_exact([[0, 200], [2, 198]]).pvalue > 0.05
    assert record.ci_low <= 0.0 and record.ci_high > 1.0 and math.isfinite(record.ci_high)
    assert record.verdict is not Verdict.FAIL


NO_NEUTRAL = {
    "anger": {"anger": 35, "neutral": 5},
    "happiness": {"happiness": 40},
}
WITH_NEUTRAL = {
    "anger": {"anger": 25, "happiness": 5},
    "happiness": {"happiness": 28, "neutral": 2},
    "neutral": {"neutral": 25, "anger": 5},
}


@pytest.mark.parametrize(
    ("counts", "lacking"),
    [
        ({"Black": NO_NEUTRAL, "White": WITH_NEUTRAL}, "Black"),  # the compared group has no neutral face
        ({"Black": WITH_NEUTRAL, "White": NO_NEUTRAL}, "White"),  # the reference has none
    ],
)
def test_a_group_without_an_emotion_says_so(counts, lacking):
    records = _evaluate(counts, labels=("anger", "happiness", "neutral"))
    about_neutral = [
        r
        for r in records.values()
        if r.detail is not None and (r.detail == "neutral" or r.detail.startswith("neutral->"))
    ]
    # over_attribution[neutral] is about the *other* faces read as neutral, which both groups have
    assert {r.criterion for r in about_neutral} == {"recall_gap", "confusion_ratio", "over_attribution", "score_shift"}
    for record in about_neutral:
        if record.criterion == "score_shift":  # counts alone carry no scores: undefined for that reason
            assert record.rule == "undefined" and "gives no per-label scores" in record.reason, record.reason
            continue
        if record.criterion == "over_attribution":
            assert record.rule != "undefined" and "no neutral faces" not in record.reason, record.reason
            continue
        assert record.verdict is Verdict.INCONCLUSIVE and record.rule == "undefined", record.test_id
        assert "no neutral faces" in record.reason and lacking in record.reason, record.reason


def test_only_one_group_left():
    counts = {
        "Black": {"anger": {"anger": 8, "disgust": 2}},  # 10 faces: below min_group_size = 30
        "White": {"anger": {"anger": 80, "disgust": 20}},
    }
    records = _evaluate(counts, labels=("anger", "disgust"))
    assert "not tested: Black (n=10) below min_group_size = 30" in records["accuracy_gap|m|d|race=Black~White"].reason
    assert records["association|m|d|race"].rule == "undefined"
    floor = records["accuracy_floor|m|d|race=White"]
    assert floor.estimate == pytest.approx(0.8) and floor.verdict is Verdict.PASS


def test_a_table_of_one_group():
    records = _evaluate({"White": {"anger": {"anger": 80, "disgust": 20}}}, labels=("anger", "disgust"))
    assert {r.criterion for r in records.values()} == {"accuracy_floor", "association", "association_stratified"}
    assert records["association|m|d|race"].verdict is Verdict.INCONCLUSIVE


def _mantel_haenszel(strata):
    """MH risk difference (group minus reference), weights n1 n0 / (n1 + n0): direct formula."""
    weights = [n1 * n0 / (n1 + n0) for _, n1, _, n0 in strata]
    diffs = [x1 / n1 - x0 / n0 for x1, n1, x0, n0 in strata]
    return sum(w * d for w, d in zip(weights, diffs, strict=True)) / sum(weights)


@pytest.mark.parametrize("mode", ["harm", "equivalence"])
def test_all_right_or_all_wrong_strata_with_no_gap_within_them(mode):
    counts = {
        "Black": {"anger": {"anger": 30}, "fear": {"disgust": 70}},  # accuracy 0.30 overall
        "White": {"anger": {"anger": 50}, "fear": {"disgust": 50}},  # accuracy 0.50 overall
    }
    thresholds = policy(only=("accuracy_gap_stratified",), settings={"mode": mode})
    [record] = _evaluate(counts, labels=("anger", "disgust", "fear"), thresholds=thresholds).values()
    assert record.estimate == _mantel_haenszel([(30, 30, 50, 50), (0, 70, 0, 50)]) == 0.0
    assert record.verdict is not Verdict.FAIL  # no stratum shows any gap
    if record.rule != "undefined":
        assert record.ci_low <= 0.0 <= record.ci_high and record.ci_low < record.ci_high


def test_all_right_or_all_wrong_strata_with_a_gap():
    counts = {
        "Black": {"anger": {"disgust": 30}, "fear": {"fear": 70}},  # every anger face wrong
        "White": {"anger": {"anger": 50}, "fear": {"fear": 50}},
    }
    thresholds = policy(only=("accuracy_gap_stratified",))
    [record] = _evaluate(counts, labels=("anger", "disgust", "fear"), thresholds=thresholds).values()
    assert record.estimate == pytest.approx(_mantel_haenszel([(0, 30, 50, 50), (70, 70, 50, 50)]))
    if record.rule != "undefined":
        assert record.ci_low < record.ci_high  # a zero-width interval would claim certainty
