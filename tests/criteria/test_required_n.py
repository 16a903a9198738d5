""" "About N images per group would settle it": checked by simulating at that N with the observed rates."""

import math

import numpy as np
import pytest

from fer_fairness.criteria.evaluate import evaluate
from fer_fairness.criteria.verdict import Verdict

from ._build import policy, table

LABELS = ("anger", "disgust")
POWER = 0.8


def _counts(hits: dict[str, int], n: dict[str, int], *, miss: str) -> dict:
    return {g: {"anger": {"anger": hits[g], miss: n[g] - hits[g]}} for g in hits}


def _record(counts: dict, thresholds) -> object:
    [record] = evaluate([table(counts, labels=LABELS, reference="R")], thresholds=thresholds, seed=0)
    return record


def _settled_share(rates: dict[str, float], n: int, thresholds, *, miss: str, simulations: int) -> float:
    rng = np.random.default_rng(7)
    settled = 0
    for _ in range(simulations):
        hits = {g: int(rng.binomial(n, p)) for g, p in rates.items()}
        record = _record(_counts(hits, dict.fromkeys(rates, n), miss=miss), thresholds)
        settled += record.verdict is not Verdict.INCONCLUSIVE
    return settled / simulations


@pytest.mark.parametrize(
    ("hits", "n", "mode"),
    [
        pytest.param({"A": 93, "R": 108}, {"A": 150, "R": 150}, "harm", id="gap-beyond-band-settles-by-FAIL"),
        pytest.param({"A": 140, "R": 142}, {"A": 200, "R": 200}, "equivalence", id="gap-inside-settles-by-PASS"),
        pytest.param({"A": 60, "R": 400}, {"A": 100, "R": 600}, "harm", id="unbalanced-groups"),
    ],
)
def test_accuracy_gap_settles_at_the_stated_n(hits, n, mode):
    thresholds = policy(only=("accuracy_gap",), settings={"mode": mode})
    record = _record(_counts(hits, n, miss="disgust"), thresholds)
    assert record.verdict is Verdict.INCONCLUSIVE and math.isfinite(record.required_n)
    needed = math.ceil(record.required_n)
    assert f"about {needed:,} images per group would settle it" in record.reason
    rates = {g: hits[g] / n[g] for g in hits}
    share = _settled_share(rates, needed, thresholds, miss="disgust", simulations=400)
    assert share >= POWER - 4.3 * math.sqrt(POWER * (1 - POWER) / 400)
    # ...and it is not wildly more than needed: at a third of it, settling is clearly rarer.
    assert _settled_share(rates, max(needed // 3, 2), thresholds, miss="disgust", simulations=200) < share


def test_zero_rates_are_settled_by_a_few_hundred_faces():
    # No non-answer in either group of 40: the gap cannot be shown within +-0.02 yet, but zero rates
    # are not "unsettleable": a few hundred faces per group do it.
    counts = {g: {"anger": {"anger": 30, "disgust": 10}} for g in ("A", "R")}
    thresholds = policy(only=("non_answer_gap",), settings={"mode": "equivalence", "min_group_size": 1})
    record = _record(counts, thresholds)
    assert record.verdict is Verdict.INCONCLUSIVE
    assert 100 <= record.required_n <= 2000
    needed = math.ceil(record.required_n)
    rng = np.random.default_rng(3)
    settled = 0
    for _ in range(200):  # the true non-answer rate is 0: every simulated table has none
        hits = {g: int(rng.binomial(needed, 0.75)) for g in ("A", "R")}
        settled += (
            _record(_counts(hits, dict.fromkeys(hits, needed), miss="disgust"), thresholds).verdict is Verdict.PASS
        )
    assert settled / 200 >= POWER


def test_confusion_ratio_settles_at_the_stated_n():
    # Anger read as disgust at 16% vs 8%: a ratio of 2 against a band of [1/1.5, 1.5].
    thresholds = policy(only=("confusion_ratio",), confusion_ratio={"pairs": ["anger->disgust"]})
    counts = {"A": {"anger": {"disgust": 16, "anger": 84}}, "R": {"anger": {"disgust": 8, "anger": 92}}}
    record = _record(counts, thresholds)
    assert record.verdict is Verdict.INCONCLUSIVE
    needed = math.ceil(record.required_n)
    share = _settled_share({"A": 0.84, "R": 0.92}, needed, thresholds, miss="disgust", simulations=300)
    assert share >= POWER - 4.3 * math.sqrt(POWER * (1 - POWER) / 300)
