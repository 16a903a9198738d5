"""The pipeline's run facts: usage and prompts from adapters that offer them, exclusions per group."""

from pathlib import Path

import pandas as pd
import pytest

from fer_fairness import pipeline
from fer_fairness.config import load_thresholds, parse_thresholds
from fer_fairness.datasets.manifest import load_manifest
from fer_fairness.report.charts import all_charts
from fer_fairness.session import RunState
from tests.studies import study_state, write_study


class CountingModel:
    """A stand-in adapter that answers from a table and reports usage and prompts."""

    name = "counting"

    def __init__(self, answers: pd.DataFrame):
        self.answers = answers

    def describe(self):
        return {"kind": "test"}

    def prompts(self):
        return {"chat": "Which emotion? <anger|disgust>"}

    def usage(self):
        return {"calls": 3, "cache_hits": 2, "refused": 1}

    def predict(self, dataset, *, context):
        assert context.concurrency == 7 and context.budget_tokens == 100  # the limits reach the adapter
        return self.answers


def _state(tmp_path: Path, manifest: Path) -> RunState:
    return RunState.from_options(
        thresholds=load_thresholds(None),
        datasets=[f"manifest:{manifest}?name=toy"],
        models=["hog-probe"],
        seed=0,
        cache_dir=tmp_path / "cache",
        report_dir=tmp_path / "reports",
        limits={"concurrency": 7, "timeout_s": 5.0, "max_retries": 1, "budget_tokens": 100},
    )


def test_facts_carry_usage_prompts_and_exclusions(tmp_path, monkeypatch):
    cells = [({"race": r}, "anger", "anger", 40) for r in ("Black", "White")]
    manifest, predictions = write_study(tmp_path, cells)
    answers = pd.read_csv(predictions).rename(columns={"prediction": "outcome"}).assign(raw="")

    def load_with_exclusions(spec, **context):
        dataset = load_manifest(spec)
        excluded = pd.DataFrame(
            {"path": ["a.png", "b.png", "c.png"], "reason": ["unreadable"] * 3, "race": ["Black", "Black", "White"]}
        )
        return type(dataset)(**{**dataset.__dict__, "exclusions": excluded})

    monkeypatch.setattr(pipeline, "_load_dataset", lambda state, spec: load_with_exclusions(spec))
    monkeypatch.setattr(pipeline, "_build_model", lambda state, spec: CountingModel(answers))
    _records, facts = pipeline.run(_state(tmp_path, manifest))

    assert facts["usage"] == {"counting": {"calls": 3, "cache_hits": 2, "refused": 1}}
    assert facts["prompts"] == {"counting": {"chat": "Which emotion? <anger|disgust>"}}
    assert facts["datasets"]["toy"]["exclusions"] == [
        {"reason": "unreadable", "race": "Black", "count": 2},
        {"reason": "unreadable", "race": "White", "count": 1},
    ]


def _run_on_race_and_gender(tmp_path, monkeypatch, *, subject_of=None):
    cells = [({"race": r, "gender": g}, "anger", o, k) for r in ("Black", "White") for g in ("f", "m")
             for o, k in (("anger", 30), ("refused", 3))]  # fmt: skip
    manifest, predictions = write_study(tmp_path, cells)
    answers = pd.read_csv(predictions).rename(columns={"prediction": "outcome"}).assign(raw="")
    monkeypatch.setattr(pipeline, "_build_model", lambda state, spec: CountingModel(answers))
    if subject_of is not None:

        def load_with_subjects(spec, **context):
            dataset = load_manifest(spec)
            samples = dataset.samples.assign(subject_id=subject_of(dataset.samples))
            return type(dataset)(**{**dataset.__dict__, "samples": samples})

        monkeypatch.setattr(pipeline, "_load_dataset", lambda state, spec: load_with_subjects(spec))
    return pipeline.run(_state(tmp_path, manifest))


def test_facts_carry_every_groupings_count_tensor_intersections_included(tmp_path, monkeypatch):
    records, facts = _run_on_race_and_gender(tmp_path, monkeypatch)
    assert [(c["attribute"], c["groups"]) for c in facts["counts"]] == [
        ("race", ["Black", "White"]),
        ("gender", ["f", "m"]),
        ("race+gender", ["Black+f", "Black+m", "White+f", "White+m"]),
    ]
    race, _, crossed = facts["counts"]
    refused = race["outcomes"].index("refused")
    assert [group[0][refused] for group in race["counts"]] == [6, 6]  # two genders x 3 refusals each
    assert [sum(map(sum, group)) for group in race["counts"]] == [66, 66]
    assert [group[0][refused] for group in crossed["counts"]] == [3, 3, 3, 3]
    assert [sum(map(sum, group)) for group in crossed["counts"]] == [33, 33, 33, 33]
    # Every record's groups have a tensor in the JSON, so every record can be recomputed from it.
    tensors = {(c["model"], c["dataset"], c["attribute"]): set(c["groups"]) for c in facts["counts"]}
    for r in records:
        assert set(r.n) <= tensors[(r.model, r.dataset, r.attribute)], r.test_id
    # write_study gives every image its own subject: independent images, no subject count.
    assert all(c["clustered"] is False and "subjects" not in c for c in facts["counts"])
    # The page draws confusion heatmaps for single attributes only (an intersection's strip of panels is
    # unreadable); non-answer bars, one row per cell, for intersections too.
    charts = all_charts(records=[], facts=facts)
    assert [c.title for c in charts["heatmaps"]] == [
        "Confusions by race: counting on toy",
        "Confusions by gender: counting on toy",
    ]
    assert [c.title for c in charts["non_answers"]] == [
        f"Non-answers by {a}: counting on toy" for a in ("race", "gender", "race+gender")
    ]


def test_facts_say_which_groupings_were_clustered_and_over_how_many_subjects(tmp_path, monkeypatch):
    # Three images per person, one person per (race, gender) cell row block: 132 images, 44 people.
    _records, facts = _run_on_race_and_gender(
        tmp_path, monkeypatch, subject_of=lambda samples: [f"p{i // 3}" for i in range(len(samples))]
    )
    assert [(c["attribute"], c["clustered"], c.get("subjects")) for c in facts["counts"]] == [
        ("race", True, 44),
        ("gender", True, 44),
        ("race+gender", True, 44),
    ]
    assert "clusters" not in facts["counts"][0]  # per-person counts stay out of the JSON


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"settings": {"comparisons": "all-pairs", "min_group_size": 1}},
        {"groups": {"intersection_comparisons": "one-reference"}, "settings": {"comparisons": "all-pairs"}},
        {"groups": {"intersections": "none"}, "criteria": {"confusion_ratio": {"pairs": ["anger->disgust"]}}},
    ],
    ids=["defaults", "all-pairs", "one-reference", "named-pairs"],
)
def test_the_tests_named_before_prediction_are_exactly_the_tests_evaluated(tmp_path, policy):
    """Collection names tests from the datasets alone; the run (whatever the model answered, even for a
    group with every answer missing or refused) decides exactly those tests, no more, no fewer."""
    cells = [
        ({"race": "Black", "gender": "f"}, "anger", "disgust", 20),
        ({"race": "Black", "gender": "m"}, "disgust", "refused", 12),
        ({"race": "White", "gender": "f"}, "anger", "anger", 35),
        ({"race": "White", "gender": "m"}, "disgust", "happiness", 9),  # an answer outside the dataset's labels
        ({"race": "Asian", "gender": "f"}, "disgust", "error", 1),
        ({"race": "Asian", "gender": "m"}, "anger", "unparseable", 4),
    ]
    manifest, predictions = write_study(tmp_path, cells)
    settings = {**policy.get("settings", {}), "max_not_evaluated": 0.5}  # one sample of 81 has no answer
    thresholds = parse_thresholds({**policy, "settings": settings}, source="test policy")
    state = study_state(tmp_path, manifest, predictions, thresholds=thresholds)
    planned = {(p.criterion, p.test_id) for p in pipeline.plan(state)}
    records, _facts = pipeline.run(state)
    assert planned == {(r.criterion, r.test_id) for r in records}
    assert len(planned) > 30
