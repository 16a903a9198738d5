"""Face Place: race from the ethnicity folders, names read by a pattern, and the faceplace-7 view."""

from __future__ import annotations

import warnings

import pytest

from fer_fairness.datasets import DATASETS
from fer_fairness.errors import ConfigError, DatasetWarning
from tests.datasets.trees import error, load, write_images

FILES = [
    "asian/ab_1_happy.jpg",
    "asian/ab_1_00F_Angry.jpg",
    "african-american/cd_2_sad.jpg",
    "caucasian/ef_3_SU.jpg",
    "hispanic/gh_4_neutral.jpg",
    "multiracial/ij_5_disgust.jpg",
    "Face-Place/caucasian/kl_6_afraid.jpg",  # the folder may sit deeper under ROOT
]


DEFAULT = r"(?P<identity>[^_]+_[^_]+)(?:_(?P<view>\d{2}[FLR]))?_(?P<expression>[A-Za-z]+)"


def test_folders_and_names_give_race_identity_expression_and_view(tmp_path):
    dataset = load(f"faceplace:{write_images(tmp_path, FILES)}")
    assert dataset.name == "faceplace"
    assert dataset.attributes == ("race",)
    columns = ["sample_id", "emotion", "subject_id", "race", "source_expression", "source_view"]
    assert sorted(dataset.samples[columns].values.tolist()) == [
        ["ab_1_00F_Angry", "anger", "ab_1", "Asian", "Angry", "00F"],
        ["ab_1_happy", "happiness", "ab_1", "Asian", "happy", ""],
        ["cd_2_sad", "sadness", "cd_2", "Black", "sad", ""],
        ["ef_3_SU", "surprise", "ef_3", "White", "SU", ""],
        ["gh_4_neutral", "neutral", "gh_4", "Hispanic", "neutral", ""],
        ["ij_5_disgust", "disgust", "ij_5", "Multiracial", "disgust", ""],
        ["kl_6_afraid", "fear", "kl_6", "White", "afraid", ""],
    ]
    assert "Face Place (Tarr lab)" in dataset.description and "7 expression images of 6 people" in dataset.description


def test_pose_series_do_not_fit_the_default_pattern(tmp_path):
    write_images(tmp_path, [*FILES, "asian/ab_1_30L.jpg", "asian/ab_1_00F.jpg"])
    assert error(f"faceplace:{tmp_path}") == (
        f"faceplace {tmp_path}: 2 image file name(s) do not follow the set's naming: "
        f"asian/ab_1_00F.jpg (does not match {DEFAULT}), asian/ab_1_30L.jpg (does not match {DEFAULT}); "
        "set ?pattern= to your release's naming (groups identity, expression, optional view and gender), "
        "move them out, or exclude them if they are not expression images, "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )
    dataset = load(f"faceplace:{tmp_path}?on_error=exclude")
    assert len(dataset.samples) == len(FILES)
    assert dataset.exclusions[["path", "reason", "race"]].values.tolist() == [
        ["asian/ab_1_00F.jpg", "file name does not follow the set's naming", "Asian"],
        ["asian/ab_1_30L.jpg", "file name does not follow the set's naming", "Asian"],
    ]


def test_a_pattern_for_another_release_with_gender(tmp_path):
    write_images(tmp_path, ["asian/F-ab01-HA-front.jpg", "caucasian/M-cd02-AN-left.png"])
    pattern = r"(?P<gender>[FM])-(?P<identity>[a-z]+\d+)-(?P<expression>[A-Z]+)-(?P<view>[a-z]+)"
    dataset = load(f"faceplace:{tmp_path}?pattern={pattern}")
    assert dataset.attributes == ("race", "gender")
    columns = ["subject_id", "emotion", "race", "gender", "source_view"]
    assert sorted(dataset.samples[columns].values.tolist()) == [
        ["ab01", "happiness", "Asian", "female", "front"],
        ["cd02", "anger", "White", "male", "left"],
    ]


def test_an_unknown_expression_word_and_the_mapping_file(tmp_path):
    images = write_images(tmp_path / "set", ["asian/ab_1_grin.jpg", "asian/ab_1_happy.jpg"])
    assert error(f"faceplace:{images}") == (
        f"faceplace {images}: 1 image(s) have a label outside the vocabulary: "
        "asian/ab_1_grin.jpg (label 'expression grin'); "
        "map the expression words with ?expressions=FILE (CSV header expression,emotion), "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )
    words = tmp_path / "words.csv"
    words.write_text("expression,emotion\ngrin,happiness\nhappy,neutral\n")
    dataset = load(f"faceplace:{images}?expressions={words}")
    assert dict(zip(dataset.samples["source_expression"], dataset.samples["emotion"], strict=True)) == {
        "grin": "happiness",
        "happy": "neutral",  # the file overrides the built-in table
    }


def test_an_image_outside_the_ethnicity_folders(tmp_path):
    write_images(tmp_path, ["asian/ab_1_happy.jpg", "extras/zz_9_sad.jpg"])
    message = error(f"faceplace:{tmp_path}")
    assert message.startswith(
        f"faceplace {tmp_path}: 1 image(s) lack an attribute value: extras/zz_9_sad.jpg (no race); "
    )


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(?P<identity>.+", "?pattern= is not a valid regular expression"),
        ("(?P<identity>.+)_(?P<word>.+)", "?pattern= needs the named group(s) expression"),
    ],
)
def test_a_bad_pattern(tmp_path, pattern, message):
    write_images(tmp_path, FILES)
    assert message in error(f"faceplace:{tmp_path}?pattern={pattern}", ConfigError)


# --- faceplace-7 ----------------------------------------------------------------------------------


def faceplace_files(count: int) -> list[str]:
    folders = ["asian", "african-american", "caucasian", "hispanic"]
    words = ["angry", "disgust", "afraid", "happy", "neutral", "sad", "surprise"]
    files = [f"{folder}/p{n}_{i}_{word}.jpg" for i in range(60) for n, folder in enumerate(folders) for word in words]
    return files[:count]


def test_faceplace7_drops_multiracial_and_holds_the_studys_count(tmp_path):
    write_images(tmp_path, [*faceplace_files(1053), "multiracial/mm_1_happy.jpg", "multiracial/mm_1_sad.jpg"])
    parsed = DATASETS.parse(f"faceplace-7:{tmp_path}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = DATASETS.factory("faceplace-7")(parsed, cache_dir=None, seed=0, progress=False)
    assert len(dataset.samples) == 1053
    assert set(dataset.samples["race"]) == {"Asian", "Black", "White", "Hispanic"}
    assert len(dataset.emotions) == 7


def test_faceplace7_with_exclusions_warns_and_counts_them(tmp_path):
    write_images(tmp_path, [*faceplace_files(6), "asian/ab_1_30L.jpg"])
    (tmp_path / faceplace_files(1)[0]).write_bytes(b"broken")
    parsed = DATASETS.parse(f"faceplace-7:{tmp_path}?on_error=exclude")
    with pytest.warns(DatasetWarning) as caught:
        dataset = DATASETS.factory("faceplace-7")(parsed, cache_dir=None, seed=0, progress=False)
    assert [str(w.message) for w in caught] == [
        f"faceplace-7 at {tmp_path}: 5 images where the study used 1053 (fewer by 1048); possible reasons: "
        "2 image(s) were excluded (?on_error=exclude); the folder may hold a partial copy, another release, "
        "or extra files; loader options change the selection (?pattern= or ?expressions=); "
        "results are not directly comparable with the study's"
    ]
    assert len(dataset.exclusions) == 2
