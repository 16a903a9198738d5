"""no_regression on ragged shapes: a group the baseline never saw is "new", not compared with nothing."""

from dataclasses import replace

from fer_fairness.criteria.evaluate import evaluate
from fer_fairness.criteria.regression import NEW_GROUP, TableBaseline
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.report.html import since_baseline

from ._build import policy, table


def test_a_group_the_baseline_lacked_is_new_and_inconclusive_and_reported_as_new():
    counts = {
        "Black": {"anger": {"anger": 60, "disgust": 40}},
        "White": {"anger": {"anger": 90, "disgust": 10}},
    }
    current = table(counts, labels=("anger", "disgust"), reference="White")
    baseline = TableBaseline(source="old.json", model="m", counts=None, gaps={}, new_groups=("Black", "White"))
    records = evaluate([replace(current, baseline=baseline)], thresholds=policy(only=("no_regression",)), seed=0)
    assert {r.detail for r in records} == {"accuracy_gap", "non_answer_gap"}
    for record in records:
        assert record.verdict is Verdict.INCONCLUSIVE and record.rule == "undefined"
        assert NEW_GROUP in record.reason
    kinds = since_baseline([r.to_dict() for r in records])
    assert [len(kinds[k]) for k in ("regressed", "improved", "new", "held")] == [0, 0, 2, 0]
