"""Shared hygiene of the folder loaders: unreadable images, escaping paths, duplicates, exclusions."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from fer_fairness.datasets import DATASETS
from fer_fairness.datasets._hygiene import KINDS, Checker, walk_images
from fer_fairness.errors import ConfigError
from tests.datasets.trees import corrupt, error, load, write_image, write_images

FOLDER_KINDS = ["cfd", "radiate", "faceplace", "rafdb", "radiate-7", "faceplace-7", "cfd-4"]


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_every_loader_is_registered(kind):
    loader = DATASETS.factory(kind)
    assert callable(loader)
    assert DATASETS.parse(f"{kind}:/data?name=x").options == {"name": "x"}


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_a_root_that_is_not_a_folder(tmp_path, kind):
    missing = tmp_path / "nope"
    message = error(f"{kind}:{missing}")
    assert message.startswith(f"{kind}: dataset folder not found: {missing}; pass the folder that holds the images")


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_a_spec_without_a_root(kind):
    assert error(f"{kind}:", ConfigError) == f"dataset '{kind}:' needs a target after the colon: {kind}:ROOT"


@pytest.mark.parametrize("kind", ["cfd", "radiate", "faceplace"])
def test_a_folder_without_images(tmp_path, kind):
    (tmp_path / "read-me.txt").write_text("no images here")
    assert error(f"{kind}:{tmp_path}").startswith(f"{kind} {tmp_path}: no image files found under {tmp_path}; ")


def test_on_error_takes_stop_or_exclude(tmp_path):
    write_image(tmp_path / "BF01_AC.jpg")
    assert error(f"radiate:{tmp_path}?on_error=skip", ConfigError) == (
        f"dataset 'radiate:{tmp_path}?on_error=skip': on_error must be one of stop, exclude; got 'skip'"
    )
    assert len(load(f"radiate:{tmp_path}?on_error=stop").samples) == 1


# --- unreadable images ----------------------------------------------------------------------------


def test_a_corrupt_image_stops_the_load_naming_the_file(tmp_path):
    write_images(tmp_path, ["BF01_AC.jpg", "BF01_AO.jpg", "WM02_HC.jpg"])
    corrupt(tmp_path / "BF01_AO.jpg")
    message = error(f"radiate:{tmp_path}")
    assert message.startswith(f"radiate {tmp_path}: 1 image(s) cannot be decoded: BF01_AO.jpg (cannot identify image")
    assert message.endswith(
        "; replace them with intact copies from the original download, "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )


def test_a_corrupt_image_becomes_an_exclusion_when_the_user_opts_in(tmp_path):
    write_images(tmp_path, ["BF01_AC.jpg", "BF01_AO.jpg", "WM02_HC.jpg"])
    corrupt(tmp_path / "BF01_AO.jpg")
    dataset = load(f"radiate:{tmp_path}?on_error=exclude")
    assert sorted(dataset.samples["sample_id"]) == ["BF01_AC", "WM02_HC"]
    exclusions = dataset.exclusions
    assert list(exclusions.columns) == ["path", "sample_id", "reason", "detail", "race", "gender"]
    assert exclusions[["path", "reason", "race", "gender"]].values.tolist() == [
        ["BF01_AO.jpg", "unreadable image", "Black", "female"]
    ]
    assert "cannot identify image file" in exclusions["detail"].iloc[0]


def test_a_truncated_png_is_unreadable(tmp_path):
    path = write_image(tmp_path / "BF01_AC.png")
    write_image(tmp_path / "BF01_AO.png")
    path.write_bytes(path.read_bytes()[:-20])
    assert "1 image(s) cannot be decoded: BF01_AC.png" in error(f"radiate:{tmp_path}")


def test_every_problem_is_listed_when_excluding(tmp_path):
    write_images(tmp_path, ["BF01_AC.jpg", "BF01_AO.jpg", "notes.jpg", "a/WM02_HC.jpg", "b/WM02_HC.jpg"])
    corrupt(tmp_path / "BF01_AO.jpg")
    dataset = load(f"radiate:{tmp_path}?on_error=exclude")
    assert dataset.samples["sample_id"].tolist() == ["BF01_AC"]
    rows = dataset.exclusions[["path", "reason"]].values.tolist()
    assert rows == [
        ["BF01_AO.jpg", "unreadable image"],
        ["a/WM02_HC.jpg", "duplicate sample id"],
        ["b/WM02_HC.jpg", "duplicate sample id"],
        ["notes.jpg", "file name does not follow the set's naming"],
    ]
    # the name says nothing of the person: their attribute values are unknown, not guessed
    assert dataset.exclusions.loc[dataset.exclusions["path"] == "notes.jpg", "race"].isna().all()


def test_a_stop_message_explains_the_first_kind_and_counts_the_rest(tmp_path):
    write_images(tmp_path, ["BF01_AC.jpg", "BF01_AO.jpg", "notes.jpg", "a/WM02_HC.jpg", "b/WM02_HC.jpg"])
    corrupt(tmp_path / "BF01_AO.jpg")
    message = error(f"radiate:{tmp_path}")
    assert message.startswith(f"radiate {tmp_path}: 1 image(s) cannot be decoded: BF01_AO.jpg (")
    assert message.endswith("; 3 other problem(s) follow once these are fixed")


def test_a_stop_message_shows_three_examples(tmp_path):
    names = [f"BF0{i}_AC.jpg" for i in range(1, 6)]
    write_images(tmp_path, names)
    for name in names:
        corrupt(tmp_path / name)
    message = error(f"radiate:{tmp_path}")
    assert "5 image(s) cannot be decoded: BF01_AC.jpg (" in message
    assert "BF03_AC.jpg (" in message and "BF04_AC.jpg" not in message
    assert " and 2 more; " in message


def test_nothing_left_after_exclusion(tmp_path):
    corrupt(write_image(tmp_path / "BF01_AC.jpg"))
    assert error(f"radiate:{tmp_path}?on_error=exclude") == (
        f"radiate {tmp_path}: no images left to evaluate (1 excluded); check that ROOT is the dataset's folder"
    )


# --- duplicates -----------------------------------------------------------------------------------


def test_two_copies_of_the_set_give_duplicate_ids(tmp_path):
    write_images(tmp_path, ["colour/BF01_AC.jpg", "greyscale/BF01_AC.jpg", "colour/BF01_AO.jpg"])
    assert error(f"radiate:{tmp_path}") == (
        f"radiate {tmp_path}: 2 image(s) share a sample id: "
        "colour/BF01_AC.jpg (sample id BF01_AC also given by greyscale/BF01_AC.jpg), "
        "greyscale/BF01_AC.jpg (sample id BF01_AC also given by colour/BF01_AC.jpg); "
        "keep one copy of each image (a folder holding two versions of the set, e.g. colour and greyscale, "
        "should be loaded one version at a time), "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )


def test_an_unpadded_and_a_padded_name_of_one_image_are_duplicates(tmp_path):
    write_images(tmp_path, ["BF1_AC.jpg", "BF01_AC.jpg"])
    assert "2 image(s) share a sample id: BF01_AC.jpg (sample id BF01_AC also given by BF1_AC.jpg)" in error(
        f"radiate:{tmp_path}"
    )


# --- paths leaving the root -----------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlink_that_escapes_the_root(tmp_path):
    root = tmp_path / "set"
    write_images(root, ["BF01_AC.jpg"])
    secret = write_image(tmp_path / "outside" / "secret.jpg")
    os.symlink(secret, root / "BF01_AO.jpg")
    assert error(f"radiate:{root}") == (
        f"radiate {root}: 1 path(s) leave the dataset folder: BF01_AO.jpg (resolves to {secret}); "
        "copy the files into the folder (a symlink must point inside it), "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )
    dataset = load(f"radiate:{root}?on_error=exclude")
    assert dataset.exclusions[["path", "reason", "race"]].values.tolist() == [
        ["BF01_AO.jpg", "path leaves the dataset folder", "Black"]
    ]


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlinked_folder_outside_the_root_is_flagged_not_walked(tmp_path):
    root = tmp_path / "set"
    write_images(root, ["BF01_AC.jpg"])
    write_images(tmp_path / "elsewhere", ["WM01_AC.jpg", "WM01_AO.jpg"])
    os.symlink(tmp_path / "elsewhere", root / "more")
    assert walk_images(root) == (["BF01_AC.jpg"], ["more"])
    assert error(f"radiate:{root}") == (
        f"radiate {root}: 1 path(s) leave the dataset folder: more (a folder link to {tmp_path / 'elsewhere'}); "
        "copy the files into the folder (a symlink must point inside it), "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )
    dataset = load(f"radiate:{root}?on_error=exclude")
    assert dataset.samples["sample_id"].tolist() == ["BF01_AC"]
    assert dataset.exclusions[["path", "reason"]].values.tolist() == [["more", "path leaves the dataset folder"]]


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_root_whose_only_folder_links_away(tmp_path):
    write_images(tmp_path / "elsewhere", ["WM01_AC.jpg"])
    (tmp_path / "set").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "set" / "images")
    assert "1 path(s) leave the dataset folder: images (a folder link to" in error(f"radiate:{tmp_path / 'set'}")


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlinked_folder_inside_the_root_is_walked_once(tmp_path):
    write_images(tmp_path, ["real/BF01_AC.jpg"])
    os.symlink(tmp_path / "real", tmp_path / "alias")
    os.symlink(tmp_path, tmp_path / "real" / "loop")
    assert walk_images(tmp_path) == (["alias/BF01_AC.jpg"], [])
    assert len(load(f"radiate:{tmp_path}").samples) == 1


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_root_reached_through_a_symlink(tmp_path):
    write_images(tmp_path / "real", ["BF01_AC.jpg"])
    os.symlink(tmp_path / "real", tmp_path / "link")
    dataset = load(f"radiate:{tmp_path / 'link'}")
    assert dataset.root == (tmp_path / "real").resolve()


def test_macos_archive_litter_is_not_an_image(tmp_path):
    write_images(tmp_path, ["BF01_AC.jpg"])
    (tmp_path / "._BF01_AC.jpg").write_bytes(b"\x00\x05\x16\x07")
    write_image(tmp_path / "__MACOSX" / "BF01_AO.jpg")
    (tmp_path / "Thumbs.db").write_bytes(b"")
    assert walk_images(tmp_path) == (["BF01_AC.jpg"], [])


def test_exclusion_reasons_are_fixed_phrases():
    assert [k.reason for k in KINDS.values()] == [
        "path leaves the dataset folder",
        "image file not found",
        "unreadable image",
        "file name does not follow the set's naming",
        "duplicate sample id",
        "label outside the vocabulary",
        "attribute with no value",
    ]


def test_exclusions_are_empty_with_the_attribute_columns_when_all_is_well(tmp_path):
    write_images(tmp_path, ["BF01_AC.jpg"])
    dataset = load(f"radiate:{tmp_path}?on_error=exclude")
    pd.testing.assert_frame_equal(
        dataset.exclusions, pd.DataFrame(columns=["path", "sample_id", "reason", "detail", "race", "gender"])
    )


@pytest.mark.parametrize("marker", ["", "  ", "NA", "NaN", "null", "None"])
def test_a_missing_value_marker_from_a_source_file_is_no_value(tmp_path, marker):
    # e.g. a norming workbook exported from R holds "NA" where a self-report is missing
    write_images(tmp_path, ["a.jpg", "b.jpg"])
    checker = Checker(source="test", root=tmp_path, attributes=("race",), exclude=True)
    rows = [
        {"sample_id": "a", "path": "a.jpg", "emotion": "anger", "subject_id": "p", "race": "Black"},
        {"sample_id": "b", "path": "b.jpg", "emotion": "anger", "subject_id": "q", "race": marker},
    ]
    assert [r["sample_id"] for r in checker.check(rows)] == ["a"]
    assert checker.exclusions()[["path", "reason", "detail"]].values.tolist() == [
        ["b.jpg", "attribute with no value", "no race"]
    ]


def test_a_folder_loader_refuses_an_attribute_named_twice(tmp_path):
    write_images(tmp_path, ["Images/CFD/AF-200/CFD-AF-200-228-N.jpg"])
    spec = f"cfd:{tmp_path}?attributes=race,race"
    assert error(spec, ConfigError) == f"dataset '{spec}': ?attributes= names race more than once; name each once"
