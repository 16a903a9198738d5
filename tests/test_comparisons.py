"""Which groups are compared: intersections like with like, the old one-reference way on request.

Expected pairs are written out by hand from the definition (a cell vs the cell that differs in one
attribute, set to that attribute's reference) or found by brute force over every pair of cells.
"""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_fairness import pipeline
from fer_fairness.config import CRITERIA, parse_thresholds
from fer_fairness.criteria.evaluate import evaluate
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.errors import ConfigError, DatasetError

# light is the largest skin tone (90), female the largest gender (116), but medium+male the largest
# cell (60): the case where comparing with the largest cell mixes gender into a skin-tone test.
SIZES = {
    ("light", "female"): 50,
    ("light", "male"): 40,
    ("medium", "female"): 20,
    ("medium", "male"): 60,
    ("dark", "female"): 46,
    ("dark", "male"): 15,
}
LABELS = ("anger", "disgust")


def joined(sizes: dict[tuple[str, ...], int], *, attributes=("skin_tone", "gender"), accuracy=None) -> pd.DataFrame:
    """One row per image; ``accuracy(cell)`` gives the share answered correctly (default: all)."""
    rows = []
    for cell, n in sizes.items():
        right = round(n * (accuracy(cell) if accuracy else 1.0))
        for i in range(n):
            rows.append(
                {
                    "sample_id": f"s{len(rows)}",
                    "subject_id": f"s{len(rows)}",
                    "emotion": "anger",
                    "outcome": "anger" if i < right else "disgust",
                    **dict(zip(attributes, cell, strict=True)),
                }
            )
    return pd.DataFrame(rows)


def tables(frame: pd.DataFrame, attributes=("skin_tone", "gender"), **document):
    policy = parse_thresholds(document, source="test policy")
    dataset = SimpleNamespace(name="d", attributes=attributes, emotions=LABELS)
    return pipeline._tables(SimpleNamespace(thresholds=policy, baseline=None), "m", dataset, frame)


def pairs_of(frame: pd.DataFrame, grouping: str, **document) -> set[tuple[str, str]]:
    (table,) = [t for t in tables(frame, **document) if t.tensor.attribute == grouping]
    assert len(set(table.pairs)) == len(table.pairs), "a pair listed twice"
    return set(table.pairs)


SKIN = {
    ("dark+female", "light+female"),
    ("dark+male", "light+male"),
    ("medium+female", "light+female"),
    ("medium+male", "light+male"),
}
GENDER = {("dark+male", "dark+female"), ("light+male", "light+female"), ("medium+male", "medium+female")}


def test_each_cell_is_compared_with_the_cell_that_differs_in_one_attribute_set_to_its_reference():
    assert pairs_of(joined(SIZES), "skin_tone+gender") == SKIN | GENDER
    # The single attributes keep group vs reference.
    assert pairs_of(joined(SIZES), "skin_tone") == {("dark", "light"), ("medium", "light")}
    assert pairs_of(joined(SIZES), "gender") == {("male", "female")}


def test_a_cell_that_does_not_exist_is_never_compared():
    sizes = {cell: n for cell, n in SIZES.items() if cell != ("dark", "male")}
    assert pairs_of(joined(sizes), "skin_tone+gender") == (SKIN | GENDER) - {
        ("dark+male", "light+male"),
        ("dark+male", "dark+female"),
    }


def test_configured_single_attribute_references_decide_the_intersections_too():
    pairs = pairs_of(joined(SIZES), "skin_tone+gender", reference={"skin_tone": "dark", "gender": "male"})
    assert pairs == {
        ("light+female", "dark+female"),
        ("medium+female", "dark+female"),
        ("light+male", "dark+male"),
        ("medium+male", "dark+male"),
        ("dark+female", "dark+male"),
        ("light+female", "light+male"),
        ("medium+female", "medium+male"),
    }


def test_the_reference_is_the_largest_group_over_the_whole_dataset_not_within_a_cell():
    # Among men medium is the largest skin tone (60 vs 40), yet men are compared with light men,
    # because light is the largest skin tone overall.
    assert ("medium+male", "light+male") in pairs_of(joined(SIZES), "skin_tone+gender")


def test_all_pairs_adds_every_other_pair_of_cells_that_differ_in_one_attribute():
    pairs = pairs_of(joined(SIZES), "skin_tone+gender", settings={"comparisons": "all-pairs"})
    assert pairs == SKIN | GENDER | {("dark+female", "medium+female"), ("dark+male", "medium+male")}
    assert pairs_of(joined(SIZES), "skin_tone", settings={"comparisons": "all-pairs"}) == {
        ("dark", "light"),
        ("medium", "light"),
        ("dark", "medium"),
    }


def test_one_reference_mode_compares_every_cell_with_the_largest_cell():
    pairs = pairs_of(joined(SIZES), "skin_tone+gender", groups={"intersection_comparisons": "one-reference"})
    others = sorted(f"{s}+{g}" for s, g in SIZES if (s, g) != ("medium", "male"))
    assert pairs == {(cell, "medium+male") for cell in others}


def test_one_reference_mode_takes_a_configured_intersection_reference():
    document = {"groups": {"intersection_comparisons": "one-reference"}, "reference": {"skin_tone+gender": "dark+male"}}
    pairs = pairs_of(joined(SIZES), "skin_tone+gender", **document)
    assert pairs == {(f"{s}+{g}", "dark+male") for s, g in SIZES if (s, g) != ("dark", "male")}
    # all-pairs in one-reference mode: every pair of cells once, whatever they differ in.
    document["settings"] = {"comparisons": "all-pairs"}
    pairs = pairs_of(joined(SIZES), "skin_tone+gender", **document)
    assert {frozenset(p) for p in pairs} == {frozenset(p) for p in itertools.combinations(pairs_of_cells(), 2)}
    assert len(pairs) == 15


def pairs_of_cells() -> list[str]:
    return [f"{s}+{g}" for s, g in SIZES]


def test_an_intersection_reference_in_like_with_like_mode_is_a_usage_error():
    with pytest.raises(ConfigError) as info:
        tables(joined(SIZES), reference={"skin_tone+gender": "light+female"})
    assert str(info.value) == (
        "test policy: 'reference.skin_tone+gender' names an intersection, which applies only with "
        "'groups.intersection_comparisons' = \"one-reference\"; like-with-like compares each cell with the cell "
        "that differs in one attribute, set to that attribute's reference "
        "(set 'reference.skin_tone' and 'reference.gender' instead)"
    )


def test_a_reference_for_an_attribute_seen_only_inside_an_intersection_is_used():
    document = {"groups": {"attributes": ["gender"], "intersections": [["skin_tone", "gender"]]}}
    pairs = pairs_of(joined(SIZES), "skin_tone+gender", reference={"skin_tone": "dark"}, **document)
    assert ("light+female", "dark+female") in pairs and ("dark+female", "light+female") not in pairs


def test_one_extra_image_that_changes_the_largest_cell_leaves_like_with_like_pairs_alone():
    grown = {**SIZES, ("light", "female"): 61}  # now the largest cell, still light and female overall
    assert pairs_of(joined(grown), "skin_tone+gender") == pairs_of(joined(SIZES), "skin_tone+gender")
    old = {"groups": {"intersection_comparisons": "one-reference"}}
    assert pairs_of(joined(grown), "skin_tone+gender", **old) != pairs_of(joined(SIZES), "skin_tone+gender", **old)


def test_values_that_contain_the_join_character_are_paired_by_their_values():
    sizes = {("18-29", "female"): 5, ("18-29", "male"): 3, ("50+", "female"): 2, ("50+", "male"): 4}
    frame = joined(sizes, attributes=("age", "gender"))
    pairs = pairs_of(frame, "age+gender", attributes=("age", "gender"))
    assert pairs == {
        ("50++female", "18-29+female"),
        ("50++male", "18-29+male"),
        ("18-29+male", "18-29+female"),
        ("50++male", "50++female"),
    }


def test_values_whose_joined_names_collide_are_a_dataset_error():
    frame = joined({("x+", "y"): 1, ("x", "+y"): 1}, attributes=("a", "b"))
    with pytest.raises(DatasetError, match=re.escape("both make the group name 'x++y'; rename a value")):
        tables(frame, attributes=("a", "b"))


def test_a_pure_gender_effect_never_shows_up_in_a_skin_tone_comparison():
    # Women are read right 90% of the time, men 50%, in every skin tone: skin tone has no effect.
    sizes = {cell: 10 * n for cell, n in SIZES.items()}
    frame = joined(sizes, accuracy=lambda cell: 0.9 if cell[1] == "female" else 0.5)

    def gaps(**document):
        document["criteria"] = {name: {"enabled": name == "accuracy_gap"} for name in CRITERIA}
        records = evaluate(tables(frame, **document), thresholds=parse_thresholds(document, source="p"), seed=0)
        return [r for r in records if r.criterion == "accuracy_gap" and r.attribute == "skin_tone+gender"]

    def gender_of(group: str) -> str:
        return group.split("+")[1]

    records = gaps()
    assert len(records) == 7
    same_gender = [r for r in records if gender_of(r.group) == gender_of(r.reference)]
    assert len(same_gender) == 4  # the skin-tone comparisons, each within one gender
    for r in same_gender:
        assert r.estimate == pytest.approx(0.0, abs=1e-12) and r.verdict != Verdict.FAIL, r.test_id
    for r in records:
        if r not in same_gender:
            assert r.estimate == pytest.approx(-0.4) and r.verdict == Verdict.FAIL, r.test_id
    assert {r.test_id for r in same_gender} == {
        "m|d|skin_tone+gender=dark+female~light+female",
        "m|d|skin_tone+gender=dark+male~light+male",
        "m|d|skin_tone+gender=medium+female~light+female",
        "m|d|skin_tone+gender=medium+male~light+male",
    }
    # The old way: against medium+male, women of every skin tone FAIL on what is a gender gap.
    old = gaps(groups={"intersection_comparisons": "one-reference"})
    failing = {r.group for r in old if r.verdict == Verdict.FAIL}
    assert failing == {"dark+female", "light+female", "medium+female"}


# --- the rule against a brute-force oracle over every pair of cells ---------------------------------


def oracle(cells: list[tuple[str, ...]], references: list[str], *, all_pairs: bool) -> set[tuple[str, str]]:
    name = "+".join
    expected = set()
    for a, b in itertools.combinations(sorted(cells, key=name), 2):
        differ = [i for i in range(len(references)) if a[i] != b[i]]
        if len(differ) != 1:
            continue
        i = differ[0]
        if b[i] == references[i]:
            expected.add((name(a), name(b)))
        elif a[i] == references[i]:
            expected.add((name(b), name(a)))
        elif all_pairs:
            expected.add((name(a), name(b)))
    return expected


@st.composite
def grids(draw):
    levels = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    values = [[f"v{i}{j}" for j in range(k)] for i, k in enumerate(levels)]
    universe = list(itertools.product(*values))
    cells = draw(st.lists(st.sampled_from(universe), min_size=1, max_size=len(universe), unique=True))
    references = [draw(st.sampled_from(v)) for v in values]
    return cells, references, draw(st.booleans())


@settings(max_examples=200, deadline=None)
@given(grids())
def test_pairs_match_the_brute_force_definition(grid):
    cells, references, all_pairs = grid
    names = {"+".join(c): c for c in cells}
    groups = tuple(sorted(names))
    pairs = pipeline._like_with_like_pairs(groups, names, references, all_pairs=all_pairs)
    assert len(pairs) == len(set(pairs))
    assert {frozenset(p) for p in pairs} == {frozenset(p) for p in set(pairs)}  # each unordered pair once
    assert len({frozenset(p) for p in pairs}) == len(pairs)
    assert set(pairs) == oracle(cells, references, all_pairs=all_pairs)
