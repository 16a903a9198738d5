"""RAF-DB basic: the label list, the manual attribute files, splits and image copies."""

from __future__ import annotations

from fer_fairness.errors import ConfigError
from tests.datasets.trees import corrupt, error, load, write_rafdb

ENTRIES = [
    ("train_00001.jpg", 1, (0, 0, 2)),
    ("train_00002.jpg", 4, (1, 1, 0)),
    ("train_00003.jpg", 7, (2, 2, 4)),
    ("test_0001.jpg", 6, (1, 2, 3)),
    ("test_0002.jpg", 3, (0, 1, 1)),
]


def test_labels_and_manual_attributes(tmp_path):
    dataset = load(f"rafdb:{write_rafdb(tmp_path, ENTRIES)}")
    assert dataset.name == "rafdb"
    assert dataset.attributes == ("gender", "race", "age")
    columns = ["sample_id", "emotion", "subject_id", "gender", "race", "age", "source_label", "source_split"]
    assert dataset.samples[columns].values.tolist() == [
        ["train_00001", "surprise", "train_00001", "male", "White", "20-39", "1", "train"],
        ["train_00002", "happiness", "train_00002", "female", "Black", "0-3", "4", "train"],
        ["train_00003", "neutral", "train_00003", "unsure", "Asian", "70+", "7", "train"],
        ["test_0001", "anger", "test_0001", "female", "Asian", "40-69", "6", "test"],
        ["test_0002", "disgust", "test_0002", "male", "Black", "4-19", "3", "test"],
    ]
    assert dataset.samples["path"].tolist()[:2] == [
        "Image/aligned/train_00001_aligned.jpg",
        "Image/aligned/train_00002_aligned.jpg",
    ]
    assert "RAF-DB basic (all, aligned images)" in dataset.description


def test_the_full_label_vocabulary(tmp_path):
    entries = [(f"train_{i:05d}.jpg", i, (0, 0, 0)) for i in range(1, 8)]
    dataset = load(f"rafdb:{write_rafdb(tmp_path, entries)}")
    assert dataset.samples["emotion"].tolist() == [
        "surprise",
        "fear",
        "disgust",
        "happiness",
        "sadness",
        "anger",
        "neutral",
    ]


def test_root_may_be_the_folder_above_basic(tmp_path):
    write_rafdb(tmp_path / "basic", ENTRIES)
    assert load(f"rafdb:{tmp_path}").root == (tmp_path / "basic").resolve()


def test_split_and_original_images(tmp_path):
    write_rafdb(tmp_path, ENTRIES)
    dataset = load(f"rafdb:{tmp_path}?split=test&images=original")
    assert dataset.samples["path"].tolist() == ["Image/original/test_0001.jpg", "Image/original/test_0002.jpg"]


def test_bad_option_values(tmp_path):
    write_rafdb(tmp_path, ENTRIES)
    assert error(f"rafdb:{tmp_path}?split=val", ConfigError) == (
        f"dataset 'rafdb:{tmp_path}?split=val': split must be one of all, train, test; got 'val'"
    )


def test_a_label_outside_1_to_7(tmp_path):
    write_rafdb(tmp_path, [*ENTRIES, ("train_00009.jpg", 8, (0, 0, 0))])
    assert error(f"rafdb:{tmp_path}") == (
        f"rafdb {tmp_path}: 1 image(s) have a label outside the vocabulary: "
        "Image/aligned/train_00009_aligned.jpg (label 'label 8'); the labels are 1 to 7 (1 surprise, 2 fear, "
        "3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral), "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )


def test_an_attribute_code_outside_the_codebook(tmp_path):
    write_rafdb(tmp_path, [*ENTRIES, ("train_00009.jpg", 4, (3, 0, 9))])
    assert error(f"rafdb:{tmp_path}") == (
        f"rafdb {tmp_path}: 1 image(s) lack an attribute value: Image/aligned/train_00009_aligned.jpg "
        "(train_00009_manu_attri.txt gives gender 3, race 0, age 9; expected codes gender 0/1/2; race 0/1/2; "
        "age 0/1/2/3/4); restore the manual attribute files (Annotation/manual) from the original download, "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )
    dataset = load(f"rafdb:{tmp_path}?on_error=exclude")
    assert dataset.exclusions[["path", "reason", "gender", "race", "age"]].values.tolist() == [
        ["Image/aligned/train_00009_aligned.jpg", "attribute with no value", None, "White", None]
    ]


def test_a_missing_attribute_file(tmp_path):
    write_rafdb(tmp_path, [*ENTRIES, ("train_00009.jpg", 4, None)])
    assert (
        "Image/aligned/train_00009_aligned.jpg (no readable attribute file "
        "Annotation/manual/train_00009_manu_attri.txt)"
    ) in error(f"rafdb:{tmp_path}")


def test_a_listed_image_that_is_missing(tmp_path):
    write_rafdb(tmp_path, ENTRIES)
    (tmp_path / "Image/aligned/test_0002_aligned.jpg").unlink()
    assert error(f"rafdb:{tmp_path}") == (
        f"rafdb {tmp_path}: 1 image file(s) not found: Image/aligned/test_0002_aligned.jpg; "
        "restore them from the original download, or choose the other copy with ?images=original, "
        "or pass ?on_error=exclude to leave them out and list them in the report"
    )


def test_a_corrupt_image_excluded(tmp_path):
    write_rafdb(tmp_path, ENTRIES)
    corrupt(tmp_path / "Image/aligned/train_00002_aligned.jpg")
    dataset = load(f"rafdb:{tmp_path}?on_error=exclude")
    assert len(dataset.samples) == 4
    assert dataset.exclusions[["path", "reason", "gender", "race", "age"]].values.tolist() == [
        ["Image/aligned/train_00002_aligned.jpg", "unreadable image", "female", "Black", "0-3"]
    ]


def test_a_malformed_label_list(tmp_path):
    write_rafdb(tmp_path, ENTRIES)
    labels = tmp_path / "EmoLabel/list_patition_label.txt"
    labels.write_text("train_00001.jpg 1\ntrain_00002.jpg\n")
    assert error(f"rafdb:{tmp_path}") == (
        f"rafdb: label list {labels} line 2: expected '<image> <label>', got 'train_00002.jpg'; "
        "restore the file from the original download"
    )


def test_no_label_list(tmp_path):
    assert error(f"rafdb:{tmp_path}") == (
        f"rafdb {tmp_path}: label list EmoLabel/list_patition_label.txt not found there or under basic/; "
        "point ROOT at RAF-DB's basic folder"
    )
