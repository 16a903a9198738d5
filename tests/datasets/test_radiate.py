"""RADIATE: names, the code table, unknown codes, the override file, and the radiate-7 view."""

from __future__ import annotations

import warnings

import pytest

from fer_fairness.datasets import DATASETS
from fer_fairness.errors import ConfigError, DatasetWarning
from tests.datasets.trees import error, load, radiate_names, write_image, write_images

CONFIRMED = ["AC", "AO", "FC", "FO", "HC", "HO", "HE", "NC"]


def test_names_give_race_gender_subject_emotion_and_mouth(tmp_path):
    write_images(tmp_path, ["Black/BF07_AO.jpg", "Black/BF07_HE.jpg", "White/WM12_NC.png", "AM3_FC.bmp"])
    dataset = load(f"radiate:{tmp_path}")
    assert dataset.name == "radiate"
    assert dataset.attributes == ("race", "gender")
    assert dataset.emotions == ("anger", "fear", "happiness", "neutral")
    columns = ["sample_id", "path", "emotion", "subject_id", "race", "gender", "source_code", "source_mouth"]
    assert sorted(dataset.samples[columns].values.tolist()) == [
        ["AM03_FC", "AM3_FC.bmp", "fear", "AM03", "Asian", "male", "FC", "closed"],
        ["BF07_AO", "Black/BF07_AO.jpg", "anger", "BF07", "Black", "female", "AO", "open"],
        ["BF07_HE", "Black/BF07_HE.jpg", "happiness", "BF07", "Black", "female", "HE", "exuberant"],
        ["WM12_NC", "White/WM12_NC.png", "neutral", "WM12", "White", "male", "NC", "closed"],
    ]
    assert "RADIATE" in dataset.description and "4 images of 3 models" in dataset.description
    assert dataset.exclusions.empty and dataset.notes == ()


def test_the_confirmed_codes_load_without_a_warning(tmp_path):
    write_images(tmp_path, [f"HF01_{code}.jpg" for code in CONFIRMED])
    parsed = DATASETS.parse(f"radiate:{tmp_path}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = DATASETS.factory("radiate")(parsed, cache_dir=None, seed=0, progress=False)
    assert dict(zip(dataset.samples["source_code"], dataset.samples["emotion"], strict=True)) == {
        "AC": "anger",
        "AO": "anger",
        "FC": "fear",
        "FO": "fear",
        "HC": "happiness",
        "HO": "happiness",
        "HE": "happiness",
        "NC": "neutral",
    }


def test_assumed_codes_load_with_a_warning_that_says_how_to_confirm(tmp_path):
    write_images(tmp_path, ["WF01_SO.jpg", "WF01_PO.jpg", "WF02_PO.jpg", "WF01_AC.jpg"])
    parsed = DATASETS.parse(f"radiate:{tmp_path}")
    with pytest.warns(DatasetWarning) as caught:
        dataset = DATASETS.factory("radiate")(parsed, cache_dir=None, seed=0, progress=False)
    expected = (
        f"radiate {tmp_path}: 3 image(s) carry code(s) whose meaning is assumed, not confirmed: "
        "PO surprise (open), SO sadness (open); if the set's read-me says otherwise, declare them in a code "
        "file and pass ?codes=FILE (codes declared there count as confirmed)"
    )
    assert [str(w.message) for w in caught] == [expected]
    assert dataset.notes == (expected,)
    assert dict(zip(dataset.samples["sample_id"], dataset.samples["emotion"], strict=True)) == {
        "WF01_SO": "sadness",
        "WF01_PO": "surprise",
        "WF02_PO": "surprise",
        "WF01_AC": "anger",
    }


def test_unknown_codes_stop_the_load_listing_codes_and_files(tmp_path):
    write_images(tmp_path, ["a/BF01_XO.jpg", "b/BM02_XO.jpg", "BF01_ZZ.jpg", "BF01_AC.jpg", "WF01_SUO.jpg"])
    known = "AC, AO, CC, CO, DC, DO, FC, FO, HC, HE, HO, NC, NO, PO, SC, SO"
    assert error(f"radiate:{tmp_path}") == (
        f"radiate {tmp_path}: unknown expression code(s) SUO (1 file(s): WF01_SUO.jpg); "
        "XO (2 file(s): BF01_XO.jpg, BM02_XO.jpg); ZZ (1 file(s): BF01_ZZ.jpg); "
        f"the code table knows {known}; declare the missing codes in a CSV file (header code,emotion,mouth; "
        'e.g. SUO,surprise,open) or a TOML file (SUO = "surprise") and pass it as radiate:ROOT?codes=FILE'
    )


def test_unknown_codes_stop_the_load_even_when_excluding(tmp_path):
    write_images(tmp_path, ["BF01_XO.jpg", "BF01_AC.jpg"])
    assert "unknown expression code(s) XO" in error(f"radiate:{tmp_path}?on_error=exclude")


def test_a_csv_code_file_extends_and_overrides_the_table(tmp_path):
    images = tmp_path / "set"
    write_images(images, ["BF01_XO.jpg", "BF01_SO.jpg", "BF01_AC.jpg"])
    codes = tmp_path / "codes.csv"
    codes.write_text("code,emotion,mouth\nXO,Surprise,\nso,disgust,closed\n")
    parsed = DATASETS.parse(f"radiate:{images}?codes={codes}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # codes declared in the file count as confirmed
        dataset = DATASETS.factory("radiate")(parsed, cache_dir=None, seed=0, progress=False)
    table = dataset.samples.set_index("sample_id")[["emotion", "source_mouth"]].to_dict("index")
    assert table == {
        "BF01_XO": {"emotion": "surprise", "source_mouth": "open"},  # mouth from the code's last letter
        "BF01_SO": {"emotion": "disgust", "source_mouth": "closed"},
        "BF01_AC": {"emotion": "anger", "source_mouth": "closed"},
    }
    assert f"code table extended by {codes}" in dataset.description


def test_a_toml_code_file(tmp_path):
    images = tmp_path / "set"
    write_images(images, ["HM04_UO.jpg", "HM04_XC.jpg"])
    codes = tmp_path / "codes.toml"
    codes.write_text('UO = "surprise"\nXC = { emotion = "sadness", mouth = "closed" }\n')
    dataset = load(f"radiate:{images}?codes={codes}")
    assert sorted(dataset.samples["emotion"]) == ["sadness", "surprise"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("codes.csv", "code,emotion\nXO,joy\n", "entry 'XO' maps to 'joy', which is not a label of the vocabulary"),
        ("codes.csv", "emotion,code\nanger,XO\n", "the header must be code,emotion,mouth (found: emotion,code)"),
        ("codes.toml", "XO = 3\n", "entry 'XO' must be a label or a table"),
        ("codes.toml", 'XO = {emotion = "anger", colour = "red"}\n', "entry 'XO' has unknown field(s) colour"),
        ("codes.json", "{}", "expected a .csv or .toml file"),
    ],
)
def test_a_bad_code_file_is_named(tmp_path, name, content, message):
    write_image(tmp_path / "set" / "BF01_AC.jpg")
    codes = tmp_path / name
    codes.write_text(content)
    found = error(f"radiate:{tmp_path / 'set'}?codes={codes}")
    assert found.startswith(f"RADIATE code file {codes}") and message in found


def test_a_missing_code_file(tmp_path):
    write_image(tmp_path / "BF01_AC.jpg")
    assert error(f"radiate:{tmp_path}?codes={tmp_path / 'nope.csv'}") == (
        f"RADIATE code file not found: {tmp_path / 'nope.csv'}"
    )


def test_names_that_do_not_follow_the_naming(tmp_path):
    write_images(tmp_path, ["BF01_AC.jpg", "BF01-AC.jpg", "XF01_AC.jpg"])
    assert error(f"radiate:{tmp_path}") == (
        f"radiate {tmp_path}: 2 image file name(s) do not follow the set's naming: "
        "BF01-AC.jpg (expected {race}{gender}{NN}_{CODE}, e.g. BF07_AO.jpg), "
        "XF01_AC.jpg (race must be one of A, B, H, W, gender F or M); "
        "name them {race}{gender}{NN}_{CODE}, e.g. BF07_AO.jpg or move them out of the folder, "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )


def test_unknown_option(tmp_path):
    write_image(tmp_path / "BF01_AC.jpg")
    assert error(f"radiate:{tmp_path}?code=x", ConfigError) == (
        f"dataset 'radiate:{tmp_path}?code=x': unknown option(s) code (allowed: name, on_error, codes)"
    )


# --- radiate-7 ------------------------------------------------------------------------------------

SEVEN_CODES = [*CONFIRMED, "NO", "DC", "DO", "SC", "SO", "PO"]  # every code but calm's


def test_radiate7_drops_calm_and_holds_the_studys_count(tmp_path):
    write_images(tmp_path, radiate_names(1488, SEVEN_CODES))
    write_images(tmp_path, ["BF01_CC.jpg", "BF01_CO.jpg", "WM40_CO.jpg"])
    parsed = DATASETS.parse(f"radiate-7:{tmp_path}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = DATASETS.factory("radiate-7")(parsed, cache_dir=None, seed=0, progress=False)
    assert len(dataset.samples) == 1488
    assert "calm" not in set(dataset.samples["emotion"])
    assert dataset.emotions == ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    assert dataset.name == "radiate-7"
    assert dataset.description.startswith("radiate-7, the study's subset: RADIATE without calm")
    assert not [w for w in caught if "the study used" in str(w.message)]


def test_radiate7_with_another_count_warns_and_says_why(tmp_path):
    write_images(tmp_path, radiate_names(20, SEVEN_CODES))
    parsed = DATASETS.parse(f"radiate-7:{tmp_path}")
    with pytest.warns(DatasetWarning) as caught:
        dataset = DATASETS.factory("radiate-7")(parsed, cache_dir=None, seed=0, progress=False)
    expected = (
        f"radiate-7 at {tmp_path}: 20 images where the study used 1488 (fewer by 1468); possible reasons: "
        "the folder may hold a partial copy, another release, or extra files; loader options change the "
        "selection (a ?codes= file that maps codes to or away from calm); "
        "results are not directly comparable with the study's"
    )
    assert expected in [str(w.message) for w in caught]
    assert dataset.notes[-1] == expected
    assert len(dataset.samples) == 20  # the run goes on with what is there


def test_radiate7_with_more_images_than_the_study(tmp_path):
    write_images(tmp_path, radiate_names(1490, SEVEN_CODES))
    parsed = DATASETS.parse(f"radiate-7:{tmp_path}")
    with pytest.warns(DatasetWarning) as caught:
        DATASETS.factory("radiate-7")(parsed, cache_dir=None, seed=0, progress=False)
    assert any(
        "1490 images where the study used 1488 (more by 2); possible reasons: the folder may hold another "
        "release, duplicated or extra files; " in str(w.message)
        for w in caught
    )
