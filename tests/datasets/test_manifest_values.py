"""Attribute values in a manifest: missing markers, spellings of one group, ?map=, repeated columns."""

import warnings

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fer_fairness.datasets._table import MISSING_VALUES, validate_samples
from fer_fairness.errors import ConfigError, DatasetError, DatasetWarning
from tests.datasets.test_manifest import FILL, HEADER, MISSING, ROWS, error, load, png, tree, write_csv


def with_race(values: list[str]) -> list[list[str]]:
    """ROWS with the race column (index 4) replaced, row by row."""
    return [[*row[:4], value, row[5]] for row, value in zip(ROWS, values, strict=True)]


# --- missing values --------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["NA", "NaN", "null", "NULL", "None", "n/a", "#N/A", "<NA>", "", "   ", " na "])
def test_missing_markers_are_missing_not_a_group(tmp_path, marker):
    path = tree(tmp_path, HEADER, with_race(["Black", "Black", marker, marker]))
    assert error(path) == (
        f"manifest {path}: attribute 'race' has no value for 2 sample(s) (first: row 3, sample s3; {MISSING}); {FILL}"
    )


def test_an_r_write_csv_file_stops_on_its_na(tmp_path):
    # What R's write.csv(df, row.names = FALSE) writes: strings quoted, missing values a bare NA.
    for i in range(1, 4):
        png(tmp_path / f"images/s{i}.png")
    path = tmp_path / "faces.csv"
    path.write_text(
        '"sample_id","path","emotion","subject_id","race"\n'
        '"s1","images/s1.png","anger","p1","Black"\n'
        '"s2","images/s2.png","fear","p2",NA\n'
        '"s3","images/s3.png","anger","p3","White"\n'
    )
    assert error(path).startswith(f"manifest {path}: attribute 'race' has no value for 1 sample(s) (first: row 2,")


def test_exclude_lists_samples_with_missing_values(tmp_path):
    rows = with_race(["Black", "NA", "White", "null"])
    rows[3][5] = "NaN"  # s4 lacks both
    path = tree(tmp_path, HEADER, rows)
    dataset = load(path, "on_error=exclude")
    assert dataset.samples["sample_id"].tolist() == ["s1", "s3"]
    assert set(dataset.samples["race"]) == {"Black", "White"}
    assert dataset.exclusions.values.tolist() == [
        ["images/s2.png", "s2", "missing race", "row 2, sample s2", None, "female"],
        ["images/s4.png", "s4", "missing race, gender", "row 4, sample s4", None, None],
    ]
    assert list(dataset.exclusions.columns) == ["path", "sample_id", "reason", "detail", "race", "gender"]


def test_exclude_with_nothing_missing_has_an_empty_list(tmp_path):
    dataset = load(tree(tmp_path), "on_error=exclude")
    assert len(dataset.samples) == len(ROWS) and dataset.exclusions.empty


def test_exclude_of_every_sample_stops(tmp_path):
    path = tree(tmp_path, HEADER, with_race(["NA"] * 4))
    assert error(path, "on_error=exclude") == (
        f"manifest {path}: no samples left to evaluate (4 excluded for missing values)"
    )


def test_on_error_takes_stop_or_exclude(tmp_path):
    path = tree(tmp_path)
    assert error(path, "on_error=drop", kind=ConfigError) == (
        f"dataset 'manifest:{path}?on_error=drop': on_error must be one of stop, exclude; got 'drop'"
    )


@given(marker=st.sampled_from(["na", "nan", "null", "none", "n/a"]), data=st.data())
def test_any_casing_and_padding_of_a_marker_is_missing(marker, data):
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in marker)
    padded = data.draw(st.sampled_from(["", " ", "\t"])) + cased + data.draw(st.sampled_from(["", "  "]))
    table = pd.DataFrame(
        {"sample_id": ["a", "b"], "path": ["a.png", "b.png"], "emotion": ["anger"] * 2, "subject_id": ["p", "q"]}
    )
    table["race"] = ["Black", padded]
    with pytest.raises(DatasetError, match=r"attribute 'race' has no value for 1 sample\(s\) \(first: row 2, sample b"):
        validate_samples(table, source="t")


# --- spellings of one group -----------------------------------------------------------------------


def test_values_differing_only_in_case_stop_with_a_map_to_merge_them(tmp_path):
    rows = [[*row[:5], g] for row, g in zip(ROWS, ["Female", "female", "male", " female"], strict=True)]
    path = tree(tmp_path, HEADER, rows)
    assert error(path) == (
        f"manifest {path}: attribute 'gender' has values that differ only in case or spacing, which would be "
        "compared as separate groups: 'Female' (1) and 'female' (2); map them to one value, e.g. "
        "?map=gender:Female=female, or fix the file"
    )
    merged = load(path, "map=gender:Female=female")
    assert merged.samples["gender"].tolist() == ["female", "female", "male", "female"]


def test_inner_spacing_is_a_spelling_too(tmp_path):
    path = tree(tmp_path, HEADER, with_race(["African American", "African  American", "White", "White"]))
    assert "'African  American' (1) and 'African American' (1)" in error(path)


@given(
    value=st.text(st.characters(categories=["L"]), min_size=1, max_size=8).filter(
        lambda v: v.swapcase() != v and v.lower() not in MISSING_VALUES
    )
)
def test_any_two_casings_of_a_value_stop(value):
    table = pd.DataFrame(
        {"sample_id": ["a", "b"], "path": ["a.png", "b.png"], "emotion": ["anger"] * 2, "subject_id": ["p", "q"]}
    )
    table["group"] = [value, value.swapcase()]
    if value.casefold() == value.swapcase().casefold():
        with pytest.raises(DatasetError, match="differ only in case or spacing"):
            validate_samples(table, source="t")
    else:  # casefolding tells some letters apart that swapcase does not map back (e.g. 'ſ')
        validate_samples(table, source="t")


def test_a_letter_beside_a_word_it_may_abbreviate_is_reported_not_stopped(tmp_path):
    rows = [[*row[:5], g] for row, g in zip(ROWS, ["F", "female", "M", "male"], strict=True)]
    path = tree(tmp_path, HEADER, rows)
    with pytest.warns(DatasetWarning) as caught:
        dataset = load(path)
    note = (
        "attribute 'gender' has a one-letter value beside a word it may abbreviate, compared as separate groups: "
        "'F' (1) and 'female' (1); 'M' (1) and 'male' (1); if they are one group, map them with "
        "?map=gender:F=female,M=male"
    )
    assert dataset.notes == (note,)
    assert [str(w.message) for w in caught] == [f"manifest {path}: {note}"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)
        mapped = load(path, "map=gender:F=female,M=male")
    assert mapped.samples["gender"].tolist() == ["female", "female", "male", "male"] and mapped.notes == ()


# --- ?map= -----------------------------------------------------------------------------------------


def test_map_over_two_attributes_and_a_marker_that_is_a_real_value(tmp_path):
    rows = [[*row[:4], r, g] for row, r, g in zip(ROWS, ["NA", "EU", "NA", "EU"], ["f", "f", "m", "f"], strict=True)]
    path = tree(tmp_path, HEADER, rows)
    dataset = load(path, "map=race:NA=North America;gender:f=female,m=male")
    assert dataset.samples[["race", "gender"]].values.tolist() == [
        ["North America", "female"],
        ["EU", "female"],
        ["North America", "male"],
        ["EU", "female"],
    ]


def test_map_to_nothing_marks_a_value_missing(tmp_path):
    path = tree(tmp_path, HEADER, with_race(["Black", "unknown", "White", "White"]))
    dataset = load(path, "map=race:unknown=&on_error=exclude")
    assert dataset.exclusions[["path", "reason"]].values.tolist() == [["images/s2.png", "missing race"]]


def test_map_value_with_a_comma_is_escaped(tmp_path):
    path = tree(tmp_path, HEADER, with_race(["Black", "White, non-Hispanic", "White", "White"]))
    dataset = load(path, "map=race:White%2C non-Hispanic=White")
    assert dataset.samples["race"].tolist() == ["Black", "White", "White", "White"]


def test_map_entry_that_matches_no_value(tmp_path):
    path = tree(tmp_path)
    assert error(path, "map=gender:Femal=female") == (
        f"manifest {path}: ?map= gives gender value(s) 'Femal' that no sample has (values: 'female', 'male')"
    )


def test_map_of_a_column_that_is_not_compared(tmp_path):
    path = tree(tmp_path)
    assert error(path, "attributes=race&map=gender:female=f") == (
        f"manifest {path}: ?map= names gender, which is not a compared attribute (attributes: race)"
    )


# --- repeated columns and attributes -----------------------------------------------------------------


def test_a_repeated_header_is_not_a_new_attribute(tmp_path):
    path = tree(tmp_path, [*HEADER, "race"], [[*row, "White"] for row in ROWS])
    assert error(path) == (
        f"manifest file {path}: column(s) 'race' appear more than once in the header; rename or drop the extra copies"
    )


def test_a_header_repeated_up_to_spacing(tmp_path):
    path = tree(tmp_path, [*HEADER, " gender "], [[*row, "x"] for row in ROWS])
    assert "column(s) 'gender' appear more than once in the header" in error(path)


def test_attributes_named_twice(tmp_path):
    path = tree(tmp_path)
    assert error(path, "attributes=race,gender,race", kind=ConfigError) == (
        f"dataset 'manifest:{path}?attributes=race,gender,race': ?attributes= names race more than once; name each once"
    )


def test_attributes_that_list_no_name(tmp_path):
    path = tree(tmp_path)
    assert error(path, "attributes=,", kind=ConfigError) == (
        f"dataset 'manifest:{path}?attributes=,': ?attributes= lists no names; name them, e.g. ?attributes=race,gender"
    )


def test_validate_samples_refuses_an_attribute_named_twice():
    table = pd.DataFrame(
        {"sample_id": ["a"], "path": ["a.png"], "emotion": ["anger"], "subject_id": ["p"], "race": ["Black"]}
    )
    with pytest.raises(DatasetError, match=r"^t: attribute\(s\) race named more than once; name each once$"):
        validate_samples(table, source="t", attributes=["race", "race"])


def test_write_csv_helper_keeps_na_as_text(tmp_path):
    # The oracle above depends on the file holding the literal marker, not an empty cell.
    path = write_csv(tmp_path / "m.csv", ["a"], [["NA"]])
    assert path.read_text().splitlines() == ["a", "NA"]


def test_map_of_an_attribute_column_the_file_lacks(tmp_path):
    path = tree(tmp_path)
    assert error(path, "attributes=ethnicity&map=ethnicity:a=b").startswith(
        f"manifest {path}: attribute column(s) ethnicity not found"
    )


def test_one_column_mapped_onto_two_required_columns(tmp_path):
    header = ["id", "path", "emotion", "person"]
    path = tree(tmp_path, header, [[*row[:4]] for row in ROWS])
    assert error(path, "sample_id=person&subject_id=person", kind=ConfigError) == (
        f"dataset 'manifest:{path}?sample_id=person&subject_id=person': column(s) person mapped onto two "
        "of sample_id, path, emotion, subject_id; each needs its own"
    )
