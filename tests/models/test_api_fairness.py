"""A chat model that refuses one group more often fails non_answer_gap, through the real pipeline pieces."""

from __future__ import annotations

import pytest

from fer_fairness.counts import build_counts, join_outcomes
from fer_fairness.criteria.evaluate import Table, evaluate
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.models._base import PredictContext
from fer_fairness.models.openai_chat import OpenAIChatModel
from fer_fairness.specs import Spec
from tests.criteria._build import policy

from .fake_api import FakeAPI, tiny_dataset

pytest.importorskip("openai")

LABELS = ("anger", "happiness", "neutral")
PER_GROUP = 45


def test_refusing_one_group_more_often_fails_non_answer_gap(tmp_path):
    rows = [(LABELS[i % 3], group) for group in ("majority", "minority") for i in range(PER_GROUP)]
    data, digests = tiny_dataset(tmp_path / "images", rows, labels=LABELS)
    truth = dict(zip(data.samples["sample_id"], data.samples["emotion"], strict=True))
    group = dict(zip(data.samples["sample_id"], data.samples["group"], strict=True))
    behaviour = {}
    for n, (sample_id, digest) in enumerate(digests.items()):
        # The minority group is refused two times in five, the majority never; everyone else is read right.
        refused = group[sample_id] == "minority" and n % 5 in (0, 3)
        behaviour[digest] = "refuse" if refused else f"answer:{truth[sample_id]}"

    with FakeAPI(default=behaviour.__getitem__) as api:
        model = OpenAIChatModel(
            Spec(text="openai:gpt-fake", kind="openai", target="gpt-fake"),
            env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{api.url}/v1"},
        )
        outcomes = model.predict(data, context=PredictContext(seed=0, cache_dir=tmp_path / "cache", progress=False))
        assert api.count() == 2 * PER_GROUP

    refusals = outcomes.assign(group=outcomes["sample_id"].map(group)).query("outcome == 'refused'")
    assert refusals["group"].value_counts().to_dict() == {"minority": 18}
    joined = join_outcomes(data.samples, outcomes, model=model.name, dataset=data.name)
    tensor = build_counts(joined, attributes=("group",), labels=LABELS)
    table = Table(model=model.name, dataset=data.name, tensor=tensor, pairs=(("minority", "majority"),))
    records = evaluate([table], thresholds=policy(only=("non_answer_gap",)), seed=0)

    assert [r.criterion for r in records] == ["non_answer_gap"]
    (record,) = records
    assert (record.group, record.reference) == ("minority", "majority")
    assert record.verdict is Verdict.FAIL
    assert record.estimate == pytest.approx(18 / PER_GROUP)
