"""over_attribution, planted: anger read into one group's faces that do not show it (the equalised-odds half
that recall_gap cannot see)."""

import pytest

from fer_fairness.criteria.evaluate import evaluate
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.labels import BASIC_SEVEN

from ._build import policy, table

PER_EMOTION = 400


def _study(anger_for_black: int, anger_for_white: int):
    """Anger faces read right 380 of 400 in both groups; each other emotion loses the given number to anger."""

    def group(into_anger: int) -> dict:
        rows = {"anger": {"anger": 380, "neutral": 20}}
        for emotion in BASIC_SEVEN:
            if emotion != "anger":
                rows[emotion] = {emotion: PER_EMOTION - into_anger, "anger": into_anger}
        return rows

    return table(
        {"Black": group(anger_for_black), "White": group(anger_for_white)}, labels=BASIC_SEVEN, reference="White"
    )


def test_anger_read_into_black_faces_fails_over_attribution_and_not_recall_gap():
    thresholds = policy(only=("over_attribution", "recall_gap"))
    records = evaluate([_study(anger_for_black=20, anger_for_white=2)], thresholds=thresholds, seed=0)
    anger = next(r for r in records if r.criterion == "over_attribution" and r.detail == "anger")
    # The oracle: 20 of 400 faces of each of the six other emotions read as anger, against 2 of 400.
    assert anger.rates == {"Black": pytest.approx(120 / 2400), "White": pytest.approx(12 / 2400)}
    assert anger.estimate == pytest.approx(10.0)
    assert anger.n == {"Black": 2400, "White": 2400}
    assert anger.verdict is Verdict.FAIL and anger.ci_low > 1.5
    # Each recall moves by 18 of 400 (4.5 points), inside recall_gap's 10-point band: it cannot fail.
    assert [r.verdict for r in records if r.criterion == "recall_gap"].count(Verdict.FAIL) == 0
    # Nothing is read into other emotions, for either group: no other over-attribution fails.
    others = [r for r in records if r.criterion == "over_attribution" and r.detail != "anger"]
    assert others and all(r.verdict is not Verdict.FAIL for r in others)


def test_equal_over_attribution_does_not_fail():
    thresholds = policy(only=("over_attribution",))
    records = evaluate([_study(anger_for_black=20, anger_for_white=20)], thresholds=thresholds, seed=0)
    anger = next(r for r in records if r.detail == "anger")
    assert anger.estimate == pytest.approx(1.0) and anger.verdict is not Verdict.FAIL
