"""Chicago Face Database: names (irregular ones too), the sets, the norming workbook, the cfd-4 view."""

from __future__ import annotations

import sys
import warnings

import pytest

from fer_fairness.datasets import DATASETS
from fer_fairness.errors import ConfigError, DatasetWarning
from tests.datasets.trees import cfd_path, error, load, write_images, write_norming_workbook

NAMES = [
    "CFD-AF-200-228-N.jpg",
    "CFD-AF-200-229-HC.jpg",
    "CFD-AF-200-230-HO.jpg",
    "CFD-BM-001-014-A.jpg",
    "CFD-LF-212-090-2-F.jpg",  # a second photo of the same pose: the optional {rep}
    "CFD-WM-40-22-N.jpg",  # the known irregular names: numbers without zero padding
    "CFD-MM-301-001-N.jpg",
    "CFD-IF-601-519-N.jpg",
]


def tree(root, names=NAMES):
    return write_images(root, [cfd_path(n) for n in names])


def test_names_give_ids_labels_groups_and_facts(tmp_path):
    dataset = load(f"cfd:{tree(tmp_path)}")
    assert dataset.name == "cfd"
    assert dataset.attributes == ("race", "gender")
    assert dataset.emotions == ("anger", "fear", "happiness", "neutral")
    columns = ["sample_id", "emotion", "subject_id", "race", "gender", "source_set", "source_code", "source_mouth"]
    table = sorted(dataset.samples[columns].values.tolist())
    assert table == [
        ["CFD-AF-200-228-N", "neutral", "AF-200", "Asian", "female", "CFD", "N", ""],
        ["CFD-AF-200-229-HC", "happiness", "AF-200", "Asian", "female", "CFD", "HC", "closed"],
        ["CFD-AF-200-230-HO", "happiness", "AF-200", "Asian", "female", "CFD", "HO", "open"],
        ["CFD-BM-001-014-A", "anger", "BM-001", "Black", "male", "CFD", "A", ""],
        ["CFD-IF-601-519-N", "neutral", "IF-601", "Indian", "female", "CFD-INDIA", "N", ""],
        ["CFD-LF-212-090-2-F", "fear", "LF-212", "Latino", "female", "CFD", "F", ""],
        ["CFD-MM-301-001-N", "neutral", "MM-301", "Multiracial", "male", "CFD-MR", "N", ""],
        ["CFD-WM-040-022-N", "neutral", "WM-040", "White", "male", "CFD", "N", ""],
    ]
    paths = dict(zip(dataset.samples["sample_id"], dataset.samples["path"], strict=True))
    assert paths["CFD-WM-040-022-N"] == "Images/CFD/WM-40/CFD-WM-40-22-N.jpg"  # the file keeps its own name
    photos = dict(zip(dataset.samples["sample_id"], dataset.samples["source_photo"], strict=True))
    assert photos["CFD-LF-212-090-2-F"] == "090-2"
    assert "Chicago Face Database (CFD, CFD-INDIA, CFD-MR)" in dataset.description
    assert "8 images of 6 models" in dataset.description


def test_an_irregular_and_a_regular_name_for_one_image_are_duplicates(tmp_path):
    tree(tmp_path, ["CFD-WM-040-022-N.jpg", "CFD-WM-40-022-N.jpg"])
    assert "2 image(s) share a sample id" in error(f"cfd:{tmp_path}")


def test_lower_case_suffix_and_letters(tmp_path):
    write_images(tmp_path, ["cfd-af-200-228-n.JPG"])
    assert load(f"cfd:{tmp_path}").samples["sample_id"].tolist() == ["CFD-AF-200-228-N"]


def test_an_unknown_expression_code(tmp_path):
    tree(tmp_path, ["CFD-AF-200-228-N.jpg", "CFD-AF-200-231-S.jpg"])
    assert error(f"cfd:{tmp_path}") == (
        f"cfd {tmp_path}: 1 image(s) have a label outside the vocabulary: "
        "Images/CFD/AF-200/CFD-AF-200-231-S.jpg (label 'code S'); the CFD expression codes are N, A, F, HC, HO, "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )


def test_names_that_do_not_follow_the_naming(tmp_path):
    write_images(tmp_path, ["CFD-AF-200-228-N.jpg", "CFD-XF-200-228-N.jpg", "AF-200.jpg"])
    assert error(f"cfd:{tmp_path}") == (
        f"cfd {tmp_path}: 2 image file name(s) do not follow the set's naming: "
        "AF-200.jpg (expected CFD-{race}{gender}-{model}-{photo}[-{rep}]-{expr}.jpg, e.g. CFD-AF-200-228-N.jpg), "
        "CFD-XF-200-228-N.jpg (race must be one of A, B, L, W, M, I, gender F or M); "
        "name them CFD-{race}{gender}-{model}-{photo}[-{rep}]-{expr}.jpg, e.g. CFD-AF-200-228-N.jpg "
        "or move them out of the folder, or pass ?on_error=exclude to leave them out and list them in the report"
    )


def test_a_corrupt_image_with_and_without_exclusion(tmp_path):
    tree(tmp_path)
    (tmp_path / cfd_path("CFD-BM-001-014-A.jpg")).write_bytes(b"\xff\xd8 not really a jpeg")
    assert "1 image(s) cannot be decoded: Images/CFD/BM-001/CFD-BM-001-014-A.jpg" in error(f"cfd:{tmp_path}")
    dataset = load(f"cfd:{tmp_path}?on_error=exclude")
    assert len(dataset.samples) == len(NAMES) - 1
    assert dataset.exclusions[["path", "reason", "race", "gender"]].values.tolist() == [
        ["Images/CFD/BM-001/CFD-BM-001-014-A.jpg", "unreadable image", "Black", "male"]
    ]


# --- the norming workbook -------------------------------------------------------------------------

WORKBOOK = "CFD 3.0 Norming Data and Codebook.xlsx"


def norming_rows(header: list[str], data: list[list[object]]) -> list[list[object]]:
    """The CFD sheet layout: title and note rows, a row of variable ids, the header, a blank row."""
    return [
        ["Chicago Face Database 3.0"],
        ["Norming data"],
        [],
        ["See the codebook for variable definitions"],
        [],
        [],
        ["", *(f"S00{i}" for i in range(1, len(header)))],
        header,
        [],
        *data,
        [],
        ["Note: ratings are means across raters"],
    ]


@pytest.fixture
def with_workbook(tmp_path):
    pytest.importorskip("openpyxl")
    tree(tmp_path)
    header = ["Model", "EthnicitySelf", "GenderSelf", "AgeSelf"]
    write_norming_workbook(
        tmp_path / WORKBOOK,
        {
            "CFD U.S. Norming Data": norming_rows(
                header,
                [
                    ["AF-200", "A", "F", 24],
                    ["BM-001", "B", "M", 30],
                    ["LF-212", "L", "F", 22],
                    ["WM-040", "W", "M", 28],
                ],
            ),
            "CFD-MR U.S. Norming Data": norming_rows(header, [["MM-301", "Black, White", "M", 25]]),
            "CFD-I U.S. Norming Data": norming_rows(header, [["IF601-519", "I", "F", 26]]),
            "Codebook": [["Variable", "Meaning"], ["EthnicitySelf", "self-reported ethnicity"]],
        },
    )
    return tmp_path


def test_the_workbook_adds_self_reports(with_workbook):
    dataset = load(f"cfd:{with_workbook}")
    assert dataset.attributes == ("race", "gender")  # self-reports are compared only when asked for
    table = dataset.samples.set_index("sample_id")[["ethnicity_self", "gender_self", "race_self"]]
    assert table.loc["CFD-AF-200-228-N"].tolist() == ["Asian", "female", ""]
    assert table.loc["CFD-WM-040-022-N"].tolist() == ["White", "male", ""]  # unpadded name, padded key
    assert table.loc["CFD-MM-301-001-N"].tolist() == ["Black, White", "male", ""]
    assert table.loc["CFD-IF-601-519-N"].tolist() == ["Indian", "female", ""]
    assert f"self-reports from {WORKBOOK}" in dataset.description


def test_self_reports_as_attributes(with_workbook):
    dataset = load(f"cfd:{with_workbook}?attributes=ethnicity_self,gender")
    assert dataset.attributes == ("ethnicity_self", "gender")
    assert sorted(set(dataset.samples["ethnicity_self"])) == [
        "Asian",
        "Black",
        "Black, White",
        "Indian",
        "Latino",
        "White",
    ]


def test_a_model_missing_from_the_workbook_has_no_self_report(with_workbook):
    tree(with_workbook, ["CFD-AM-250-001-N.jpg"])
    spec = f"cfd:{with_workbook}?attributes=ethnicity_self"
    assert error(spec) == (
        f"cfd {with_workbook}: 1 image(s) lack an attribute value: "
        "Images/CFD/AM-250/CFD-AM-250-001-N.jpg (no ethnicity_self); add the models to the norming workbook "
        "or leave the self-reports out of ?attributes=, "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )
    dataset = load(spec + "&on_error=exclude")
    assert dataset.exclusions[["path", "reason", "ethnicity_self"]].values.tolist() == [
        ["Images/CFD/AM-250/CFD-AM-250-001-N.jpg", "attribute with no value", ""]
    ]


def test_norming_none_skips_the_workbook(with_workbook):
    dataset = load(f"cfd:{with_workbook}?norming=none")
    assert set(dataset.samples["ethnicity_self"]) == {""}
    assert "self-reports" not in dataset.description


def test_a_workbook_named_explicitly(with_workbook, tmp_path):
    (with_workbook / WORKBOOK).rename(with_workbook / "norming.xlsx")
    assert set(load(f"cfd:{with_workbook}").samples["ethnicity_self"]) == {""}  # not found: not read
    dataset = load(f"cfd:{with_workbook}?norming=norming.xlsx")
    assert "Latino" in set(dataset.samples["ethnicity_self"])


def test_a_workbook_without_a_model_header(tmp_path):
    pytest.importorskip("openpyxl")
    tree(tmp_path)
    write_norming_workbook(tmp_path / WORKBOOK, {"Sheet": [["Target", "Race"], ["AF-200", "A"]]})
    assert error(f"cfd:{tmp_path}") == (
        f"cfd: norming workbook {tmp_path / WORKBOOK} has no sheet with a 'Model' header in its first 30 rows; "
        "pass ?norming=none to load without it"
    )


def test_a_workbook_that_is_not_one(tmp_path):
    pytest.importorskip("openpyxl")
    tree(tmp_path)
    (tmp_path / WORKBOOK).write_bytes(b"not a zip")
    assert error(f"cfd:{tmp_path}").startswith(f"cfd: norming workbook {tmp_path / WORKBOOK} could not be read: ")


def test_reading_a_workbook_without_openpyxl(tmp_path, monkeypatch):
    tree(tmp_path)
    (tmp_path / WORKBOOK).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # what an environment without it looks like
    assert error(f"cfd:{tmp_path}") == (
        f"cfd: reading the norming workbook {tmp_path / WORKBOOK} needs the openpyxl package "
        "(pip install openpyxl); or pass ?norming=none to load without the self-reports"
    )
    assert len(load(f"cfd:{tmp_path}?norming=none").samples) == len(NAMES)


def test_self_reports_asked_for_without_a_workbook(tmp_path):
    tree(tmp_path)
    assert error(f"cfd:{tmp_path}?attributes=race_self", ConfigError) == (
        f"dataset 'cfd:{tmp_path}?attributes=race_self': ?attributes= names race_self, which come from the "
        f"norming workbook, but none was found in {tmp_path}; pass ?norming=FILE"
    )


def test_unknown_attribute(tmp_path):
    tree(tmp_path)
    assert error(f"cfd:{tmp_path}?attributes=age", ConfigError) == (
        f"dataset 'cfd:{tmp_path}?attributes=age': ?attributes= takes a comma list of "
        "race, gender, race_self, ethnicity_self, gender_self; got 'age'"
    )


# --- cfd-4 ----------------------------------------------------------------------------------------


def main_set_names(count: int) -> list[str]:
    codes = ["N", "A", "F", "HC", "HO"]
    names = [
        f"CFD-{race}{gender}-{model:03d}-{photo:03d}-{code}.jpg"
        for race in "ABLW"
        for gender in "FM"
        for model in range(1, 32)
        for photo, code in enumerate(codes, start=1)
    ]
    return names[:count]


def test_cfd4_keeps_the_main_set_and_holds_the_studys_count(tmp_path):
    tree(tmp_path, main_set_names(1207) + ["CFD-MF-300-001-N.jpg", "CFD-IM-600-002-N.jpg"])
    parsed = DATASETS.parse(f"cfd-4:{tmp_path}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = DATASETS.factory("cfd-4")(parsed, cache_dir=None, seed=0, progress=False)
    assert len(dataset.samples) == 1207
    assert set(dataset.samples["source_set"]) == {"CFD"}
    assert set(dataset.samples["race"]) == {"Asian", "Black", "Latino", "White"}
    assert dataset.emotions == ("anger", "fear", "happiness", "neutral")
    assert dataset.name == "cfd-4"


def test_cfd4_with_another_count_warns(tmp_path):
    tree(tmp_path, main_set_names(12))
    parsed = DATASETS.parse(f"cfd-4:{tmp_path}")
    with pytest.warns(DatasetWarning) as caught:
        dataset = DATASETS.factory("cfd-4")(parsed, cache_dir=None, seed=0, progress=False)
    expected = (
        f"cfd-4 at {tmp_path}: 12 images where the study used 1207 (fewer by 1195); possible reasons: "
        "the folder may hold a partial copy, another release, or extra files; "
        "results are not directly comparable with the study's"
    )
    assert [str(w.message) for w in caught] == [expected]
    assert dataset.notes == (expected,)


def test_a_corrupt_image_outside_the_view_does_not_matter(tmp_path):
    tree(tmp_path, ["CFD-AF-200-228-N.jpg", "CFD-MF-300-001-N.jpg"])
    (tmp_path / cfd_path("CFD-MF-300-001-N.jpg")).write_bytes(b"broken")
    assert load(f"cfd-4:{tmp_path}").samples["sample_id"].tolist() == ["CFD-AF-200-228-N"]
