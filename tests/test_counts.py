"""The count tensor against a plain loop over rows, and the join's refusals, exactly worded."""

import random
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fer_fairness.counts import CountTensor, build_counts, join_outcomes
from fer_fairness.errors import FairnessError, ModelError
from fer_fairness.labels import BASIC_SEVEN, EMOTIONS, NON_ANSWERS

VALUES = {
    "race": ("Black", "White", "East Asian", "Latino"),
    "gender": ("female", "male"),
    "age": ("18-29", "30-49", "50+"),
}


def oracle(rows: list[dict], attributes: tuple[str, ...]) -> dict[tuple[str, str, str], int]:
    """counts[(group, true, outcome)] by walking the rows one at a time."""
    counts: dict[tuple[str, str, str], int] = {}
    for row in rows:
        group = "+".join(str(row[a]) for a in attributes)
        key = (group, row["emotion"], row["outcome"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def check_against_oracle(tensor: CountTensor, rows: list[dict], attributes: tuple[str, ...], labels: tuple[str, ...]):
    expected = oracle(rows, attributes)
    groups = {g for g, _, _ in expected}
    predicted = {o for _, _, o in expected} - set(NON_ANSWERS)

    assert tensor.attribute == "+".join(attributes)
    assert tensor.groups == tuple(sorted(groups))
    assert tensor.labels == labels
    # Outcomes: every label and every predicted emotion once, in the canonical order, then the non-answers.
    emotions_part, tail = tensor.outcomes[: -len(NON_ANSWERS)], tensor.outcomes[-len(NON_ANSWERS) :]
    assert tail == ("refused", "unparseable", "error")
    assert set(emotions_part) == set(labels) | predicted
    assert len(set(emotions_part)) == len(emotions_part)
    assert list(emotions_part) == sorted(emotions_part, key=EMOTIONS.index)

    assert tensor.counts.dtype == np.int64
    assert tensor.counts.shape == (len(tensor.groups), len(labels), len(tensor.outcomes))
    for gi, group in enumerate(tensor.groups):
        for ti, true in enumerate(tensor.labels):
            for oi, outcome in enumerate(tensor.outcomes):
                assert tensor.counts[gi, ti, oi] == expected.get((group, true, outcome), 0), (group, true, outcome)
    assert int(tensor.counts.sum()) == len(rows)

    sizes: dict[str, int] = {}
    for (group, _, _), n in expected.items():
        sizes[group] = sizes.get(group, 0) + n
    assert tensor.group_sizes() == sizes

    correct = tensor.correct_mask()
    assert correct.shape == (len(labels), len(tensor.outcomes))
    for ti, true in enumerate(tensor.labels):
        for oi, outcome in enumerate(tensor.outcomes):
            assert bool(correct[ti, oi]) == (true == outcome)
    assert tensor.model_non_answer_mask().tolist() == [o in ("refused", "unparseable") for o in tensor.outcomes]
    assert tensor.evaluated_mask().tolist() == [o != "error" for o in tensor.outcomes]


@st.composite
def tables(draw):
    attributes = tuple(draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2, unique=True)))
    labels = tuple(draw(st.lists(st.sampled_from(EMOTIONS), min_size=1, max_size=len(EMOTIONS), unique=True)))
    # Outcomes: the labels, emotions outside the dataset's label set, and non-answers.
    outcomes = st.one_of(st.sampled_from(labels), st.sampled_from(EMOTIONS), st.sampled_from(NON_ANSWERS))
    n = draw(st.integers(1, 40))
    rows = []
    for i in range(n):
        row = {"sample_id": f"s{i}", "emotion": draw(st.sampled_from(labels)), "outcome": draw(outcomes)}
        for a in VALUES:
            row[a] = draw(st.sampled_from(VALUES[a]))
        rows.append(row)
    return rows, attributes, labels


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_counts_match_a_plain_loop(table):
    rows, attributes, labels = table
    tensor = build_counts(pd.DataFrame(rows), attributes=attributes, labels=labels)
    check_against_oracle(tensor, rows, attributes, labels)


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_match_a_plain_loop_on_a_larger_seeded_table(seed):
    rng = random.Random(seed)
    labels = BASIC_SEVEN
    outcome_pool = (*BASIC_SEVEN, "contempt", "calm", *NON_ANSWERS)
    rows = []
    for i in range(1500):
        row = {"sample_id": f"s{i}", "emotion": rng.choice(labels), "outcome": rng.choice(outcome_pool)}
        for a, values in VALUES.items():
            row[a] = rng.choice(values)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for attributes in [("race",), ("race", "gender"), ("gender", "race"), ("race", "gender", "age")]:
        check_against_oracle(build_counts(frame, attributes=attributes, labels=labels), rows, attributes, labels)


def small_table() -> list[dict]:
    return [
        {"sample_id": "1", "race": "Black", "gender": "female", "emotion": "anger", "outcome": "disgust"},
        {"sample_id": "2", "race": "Black", "gender": "female", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "3", "race": "Black", "gender": "male", "emotion": "anger", "outcome": "refused"},
        {"sample_id": "4", "race": "White", "gender": "female", "emotion": "anger", "outcome": "contempt"},
        {"sample_id": "5", "race": "White", "gender": "female", "emotion": "fear", "outcome": "fear"},
        {"sample_id": "6", "race": "White", "gender": "male", "emotion": "fear", "outcome": "error"},
        {"sample_id": "7", "race": "White", "gender": "male", "emotion": "fear", "outcome": "unparseable"},
    ]


def test_intersection_groups_are_joined_with_plus_in_attribute_order():
    frame = pd.DataFrame(small_table())
    tensor = build_counts(frame, attributes=("race", "gender"), labels=("anger", "disgust", "fear"))
    assert tensor.attribute == "race+gender"
    assert tensor.groups == ("Black+female", "Black+male", "White+female", "White+male")
    flipped = build_counts(frame, attributes=("gender", "race"), labels=("anger", "disgust", "fear"))
    assert flipped.attribute == "gender+race"
    assert flipped.groups == ("female+Black", "female+White", "male+Black", "male+White")


def test_hand_counted_table():
    tensor = build_counts(pd.DataFrame(small_table()), attributes=("race",), labels=("anger", "disgust", "fear"))
    # contempt is predicted but is no label of the dataset: it gets its own outcome column.
    assert tensor.outcomes == ("anger", "contempt", "disgust", "fear", "refused", "unparseable", "error")
    black, white = tensor.counts
    #                        anger contempt disgust fear refused unparseable error
    assert black.tolist() == [[1, 0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]]
    assert white.tolist() == [[0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 1, 1]]
    assert tensor.group_sizes() == {"Black": 3, "White": 4}
    # a predicted label outside the label set is never correct, and never a non-answer
    contempt = tensor.outcomes.index("contempt")
    assert not tensor.correct_mask()[:, contempt].any()
    assert not tensor.model_non_answer_mask()[contempt] and tensor.evaluated_mask()[contempt]


def test_non_answers_are_never_correct():
    tensor = build_counts(pd.DataFrame(small_table()), attributes=("race",), labels=("anger", "fear"))
    correct = tensor.correct_mask()
    for kind in NON_ANSWERS:
        assert not correct[:, tensor.outcomes.index(kind)].any()
    assert tensor.model_non_answer_mask().sum() == 2 and (~tensor.evaluated_mask()).sum() == 1


def test_group_with_no_samples_of_an_emotion_keeps_a_zero_row():
    rows = [
        {"sample_id": "a", "race": "Black", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "b", "race": "White", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "c", "race": "White", "emotion": "fear", "outcome": "fear"},
    ]
    tensor = build_counts(pd.DataFrame(rows), attributes=("race",), labels=("anger", "fear", "surprise"))
    black = tensor.groups.index("Black")
    assert tensor.counts[black, tensor.labels.index("fear")].sum() == 0
    assert tensor.counts[:, tensor.labels.index("surprise")].sum() == 0  # a declared label nobody has
    assert tensor.group_sizes() == {"Black": 1, "White": 2}
    check_against_oracle(tensor, rows, ("race",), ("anger", "fear", "surprise"))


def test_labels_axis_follows_the_given_order():
    rows = small_table()
    labels = ("fear", "anger", "disgust")
    tensor = build_counts(pd.DataFrame(rows), attributes=("race",), labels=labels)
    check_against_oracle(tensor, rows, ("race",), labels)


def test_non_string_attribute_values_are_counted_as_text():
    rows = [
        {"sample_id": "a", "age": 30, "emotion": "anger", "outcome": "anger"},
        {"sample_id": "b", "age": 40, "emotion": "anger", "outcome": "fear"},
        {"sample_id": "c", "age": 30, "emotion": "anger", "outcome": "anger"},
    ]
    tensor = build_counts(pd.DataFrame(rows), attributes=("age",), labels=("anger",))
    assert tensor.groups == ("30", "40")
    assert tensor.group_sizes() == {"30": 2, "40": 1}


# --- join_outcomes ---------------------------------------------------------------------------------


def samples(ids) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": list(ids), "emotion": ["anger"] * len(ids), "race": ["Black"] * len(ids)})


def outcomes(mapping: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"sample_id": [i for i, _ in mapping], "outcome": [o for _, o in mapping], "raw": ["r"] * len(mapping)}
    )


def test_join_attaches_each_samples_own_outcome():
    ids = ["s3", "s1", "s2"]
    given_outcomes = [("s1", "fear"), ("s2", "refused"), ("s3", "anger")]
    joined = join_outcomes(samples(ids), outcomes(given_outcomes), model="m", dataset="d")
    assert joined["sample_id"].tolist() == ids  # the sample table's order and rows are kept
    assert dict(zip(joined["sample_id"], joined["outcome"], strict=True)) == dict(given_outcomes)
    assert list(joined.columns) == ["sample_id", "emotion", "race", "outcome"]


@given(
    ids=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=8, unique=True),
    order=st.randoms(use_true_random=False),
    missing=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_join_in_the_samples_order_or_shuffled_gives_each_sample_its_own_outcome(ids, order, missing):
    # the same-order shortcut and the look-up must agree; a missing id (NA) in place of a sample's is an error
    answers = [(i, BASIC_SEVEN[k % len(BASIC_SEVEN)]) for k, i in enumerate(ids)]
    shuffled = order.sample(answers, len(answers))
    for given_outcomes in (answers, shuffled):
        table = outcomes(given_outcomes)
        if missing:
            table.loc[len(table) - 1, "sample_id"] = None
            with pytest.raises(ModelError):
                join_outcomes(samples(ids), table, model="m", dataset="d")
            continue
        joined = join_outcomes(samples(ids), table, model="m", dataset="d")
        assert joined["sample_id"].tolist() == ids
        assert list(zip(joined["sample_id"], joined["outcome"], strict=True)) == answers


def test_join_refuses_duplicate_predictions():
    given_outcomes = outcomes([("s1", "anger"), ("s2", "fear"), ("s1", "fear"), ("s2", "fear"), ("s3", "fear")])
    with pytest.raises(ModelError) as info:
        join_outcomes(samples(["s1", "s2", "s3"]), given_outcomes, model="gpt-4o", dataset="radiate")
    assert str(info.value) == "model 'gpt-4o' gave more than one prediction for sample(s) s1, s2 of dataset 'radiate'"


def test_join_names_at_most_five_duplicates():
    ids = [f"s{i}" for i in range(8)]
    given_outcomes = outcomes([(i, "anger") for i in ids] * 2)
    with pytest.raises(ModelError, match=re.escape("for sample(s) s0, s1, s2, s3, s4 of dataset 'd'")):
        join_outcomes(samples(ids), given_outcomes, model="m", dataset="d")


def test_join_refuses_missing_predictions():
    with pytest.raises(ModelError) as info:
        join_outcomes(
            samples(["s1", "s2", "s3", "s4"]), outcomes([("s1", "anger"), ("s3", "fear")]), model="m", dataset="d"
        )
    assert str(info.value) == (
        "model 'm' has no prediction for 2 of 4 samples of dataset 'd' (e.g. s2, s4); every sample must be "
        "evaluated, mark a failure to answer as refused, unparseable or error"
    )


def test_join_names_at_most_three_missing_samples():
    ids = [f"s{i}" for i in range(6)]
    with pytest.raises(
        ModelError, match=re.escape("no prediction for 5 of 6 samples of dataset 'd' (e.g. s1, s2, s3);")
    ):
        join_outcomes(samples(ids), outcomes([("s0", "anger")]), model="m", dataset="d")


def test_join_refuses_predictions_for_unknown_samples():
    with pytest.raises(ModelError) as info:
        join_outcomes(samples(["s1"]), outcomes([("s1", "anger"), ("x9", "fear")]), model="m", dataset="d")
    assert str(info.value) == (
        "model 'm' has predictions for 1 sample id(s) that dataset 'd' lacks (e.g. x9); "
        "are the predictions for another dataset?"
    )


def test_join_reports_duplicates_before_missing_or_extra():
    with pytest.raises(ModelError, match="more than one prediction for sample"):
        join_outcomes(samples(["s1", "s2"]), outcomes([("x", "anger"), ("x", "anger")]), model="m", dataset="d")


def test_join_reports_missing_before_extra():
    with pytest.raises(ModelError, match="has no prediction for 1 of 1 samples"):
        join_outcomes(samples(["s1"]), outcomes([("x", "anger")]), model="m", dataset="d")


def test_join_errors_are_fairness_errors_on_one_line():
    with pytest.raises(FairnessError) as info:
        join_outcomes(samples(["s1"]), outcomes([]), model="m", dataset="d")
    assert "\n" not in str(info.value)


# --- per-subject counts (clusters) -------------------------------------------------------------------


def cluster_oracle(rows: list[dict], attributes: tuple[str, ...], tensor: CountTensor) -> list[tuple[str, list]]:
    """Each (group, person)'s (T, O) counts by walking the rows; an image without a subject is its own person."""
    people: dict[tuple[str, object], np.ndarray] = {}
    for i, row in enumerate(rows):
        subject = row.get("subject_id")
        if subject is None or (isinstance(subject, float) and np.isnan(subject)) or not str(subject).strip():
            subject = ("no subject", i)
        group = "+".join(str(row[a]) for a in attributes)
        cell = people.setdefault((group, subject), np.zeros(tensor.counts.shape[1:], dtype=np.int64))
        cell[tensor.labels.index(row["emotion"]), tensor.outcomes.index(row["outcome"])] += 1
    return sorted((group, c.tolist()) for (group, _), c in people.items())


def clusters_as_list(tensor: CountTensor) -> list[tuple[str, list]]:
    c = tensor.clusters
    assert c.group.dtype == np.int64 and c.counts.dtype == np.int64
    assert c.counts.shape == (len(c.group), *tensor.counts.shape[1:])
    return sorted((tensor.groups[g], counts.tolist()) for g, counts in zip(c.group, c.counts, strict=True))


def test_hand_built_clusters():
    rows = [
        {"sample_id": "1", "subject_id": "p1", "race": "Black", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "2", "subject_id": "p1", "race": "Black", "emotion": "anger", "outcome": "disgust"},
        {"sample_id": "3", "subject_id": "p1", "race": "Black", "emotion": "fear", "outcome": "refused"},
        {"sample_id": "4", "subject_id": "p2", "race": "Black", "emotion": "fear", "outcome": "fear"},
        {"sample_id": "5", "subject_id": "p3", "race": "White", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "6", "subject_id": "p3", "race": "White", "emotion": "anger", "outcome": "anger"},
        # p4 is recorded under two races: one person per group, never one cluster across groups
        {"sample_id": "7", "subject_id": "p4", "race": "Black", "emotion": "fear", "outcome": "fear"},
        {"sample_id": "8", "subject_id": "p4", "race": "White", "emotion": "fear", "outcome": "anger"},
        # no subject: each image a person of its own, never pooled with the other blanks
        {"sample_id": "9", "subject_id": None, "race": "White", "emotion": "fear", "outcome": "fear"},
        {"sample_id": "10", "subject_id": " ", "race": "White", "emotion": "fear", "outcome": "fear"},
        {"sample_id": "11", "subject_id": float("nan"), "race": "White", "emotion": "fear", "outcome": "fear"},
    ]
    tensor = build_counts(pd.DataFrame(rows), attributes=("race",), labels=("anger", "fear"))
    assert tensor.outcomes == ("anger", "disgust", "fear", "refused", "unparseable", "error")
    #            true anger: anger disgust fear refused unp. error / true fear: the same
    none, fear_ok = [0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]
    assert clusters_as_list(tensor) == sorted(
        [
            ("Black", [[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]]),  # p1
            ("Black", [none, fear_ok]),  # p2
            ("Black", [none, fear_ok]),  # p4 as Black
            ("White", [[2, 0, 0, 0, 0, 0], none]),  # p3
            ("White", [none, [1, 0, 0, 0, 0, 0]]),  # p4 as White
            ("White", [none, fear_ok]),  # sample 9
            ("White", [none, fear_ok]),  # sample 10
            ("White", [none, fear_ok]),  # sample 11
        ]
    )


def test_no_clusters_when_every_person_has_one_image_per_group():
    rows = [
        {"sample_id": "1", "subject_id": "p1", "race": "Black", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "2", "subject_id": "p1", "race": "White", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "3", "subject_id": "", "race": "White", "emotion": "anger", "outcome": "fear"},
        {"sample_id": "4", "subject_id": "", "race": "White", "emotion": "anger", "outcome": "fear"},
    ]
    assert build_counts(pd.DataFrame(rows), attributes=("race",), labels=("anger",)).clusters is None
    assert build_counts(pd.DataFrame(small_table()), attributes=("race",), labels=("anger", "fear")).clusters is None


def test_a_person_split_by_an_intersection_is_one_cluster_per_cell():
    rows = [
        {"sample_id": "1", "subject_id": "p1", "race": "Black", "gender": "f", "emotion": "anger", "outcome": "anger"},
        {"sample_id": "2", "subject_id": "p1", "race": "Black", "gender": "m", "emotion": "anger", "outcome": "anger"},
    ]
    frame = pd.DataFrame(rows)
    by_race = build_counts(frame, attributes=("race",), labels=("anger",))
    assert clusters_as_list(by_race) == [("Black", [[2, 0, 0, 0]])]
    assert build_counts(frame, attributes=("race", "gender"), labels=("anger",)).clusters is None


@st.composite
def clustered_tables(draw):
    rows, attributes, labels = draw(tables())
    subjects = st.one_of(st.sampled_from(["p1", "p2", "p3", "p4"]), st.sampled_from([None, "", float("nan")]))
    for row in rows:
        row["subject_id"] = draw(subjects)
    return rows, attributes, labels


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clustered_tables())
def test_clusters_match_a_plain_loop_and_add_up_to_the_tensor(table):
    rows, attributes, labels = table
    tensor = build_counts(pd.DataFrame(rows), attributes=attributes, labels=labels)
    check_against_oracle(tensor, rows, attributes, labels)
    expected = cluster_oracle(rows, attributes, tensor)
    if len(expected) == len(rows):
        assert tensor.clusters is None
        return
    assert clusters_as_list(tensor) == expected
    for g in range(len(tensor.groups)):
        assert (tensor.clusters.counts[tensor.clusters.group == g].sum(axis=0) == tensor.counts[g]).all()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clustered_tables())
def test_a_groups_share_from_its_persons_sums_equals_the_per_person_design_effect(table):
    # Oracle: each person's (x_s, n_s) by walking the rows, then stats.design_effect's direct sum;
    # the product reads the same from the group's cell Gram matrix (catalogue.share).
    from fer_fairness import stats
    from fer_fairness.criteria import catalogue

    rows, attributes, labels = table
    tensor = build_counts(pd.DataFrame(rows), attributes=attributes, labels=labels)
    if tensor.clusters is None:
        return
    people = cluster_oracle(rows, attributes, tensor)
    selectors = [(catalogue.correct, None), (catalogue.non_answer, None)]
    selectors += [(catalogue.recall, e) for e in labels] + [(catalogue.over_attribution, e) for e in labels]
    selectors += [(catalogue.confusion, f"{labels[0]}->{labels[-1]}")] if len(labels) > 1 else []
    for group in tensor.groups:
        persons = [counts for g, counts in people if g == group]
        for select, detail in selectors:
            found = catalogue.share(tensor, group, select, detail)
            per_person = [select(np.asarray(c), tensor, detail) for c in persons]
            xs = np.array([float(x) for x, _ in per_person])
            ns = np.array([float(n) for _, n in per_person])
            assert (found.x, found.n) == (int(xs.sum()), int(ns.sum()))
            assert found.clusters == int(np.count_nonzero(ns))
            assert found.deff == pytest.approx(stats.design_effect(x=xs, n=ns), rel=1e-12)


@pytest.mark.parametrize("images_per_person", [1, 2])
def test_a_selector_that_does_not_count_images_is_refused_with_clustered_and_plain_images(images_per_person):
    from fer_fairness.criteria import catalogue
    from fer_fairness.errors import ConfigError

    rows = [
        {"sample_id": str(i), "subject_id": f"p{i // images_per_person}", "race": "Black", "emotion": "anger"}
        | {"outcome": "anger" if i % 3 else "fear"}
        for i in range(12)
    ]
    tensor = build_counts(pd.DataFrame(rows), attributes=("race",), labels=("anger", "fear"))
    assert (tensor.clusters is None) == (images_per_person == 1)

    def biggest_cell(c, t, _detail):  # not a sum over cells
        return c.max(axis=(-2, -1)), c.sum(axis=(-2, -1))

    if tensor.clusters is None:
        assert catalogue.share(tensor, "Black", biggest_cell, None).x == 8  # nothing to add up: taken as given
        return
    with pytest.raises(ConfigError, match="is not a sum over"):
        catalogue.share(tensor, "Black", biggest_cell, None)
