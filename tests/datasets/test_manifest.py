"""The generic manifest loader and the sample-table checks, on small trees built in tmp_path."""

import csv
import dataclasses
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fer_fairness.datasets import DATASETS
from fer_fairness.datasets._table import Dataset
from fer_fairness.datasets.manifest import load_manifest
from fer_fairness.errors import ConfigError, DatasetError, FairnessError
from fer_fairness.labels import EMOTIONS

HEADER = ["sample_id", "path", "emotion", "subject_id", "race", "gender"]
ROWS = [
    ["s1", "images/s1.png", "anger", "p1", "Black", "female"],
    ["s2", "images/s2.png", "Fear", "p1", "Black", "female"],  # labels are case-insensitive
    ["s3", "images/s3.png", "anger", "p2", "White", "male"],
    ["s4", "images/s4.png", "happiness", "p3", "White", "female"],
]
MISSING = "blank, NA, N/A, NaN, null, None, <NA> and #N/A count as missing"
FILL = "fill them in, or pass ?on_error=exclude to leave those samples out and list them in the report"


def png(path: Path, shade: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4), color=shade).save(path, format="PNG")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def tree(root: Path, header=HEADER, rows=ROWS, *, name: str = "faces.csv", path_column: str = "path") -> Path:
    """A manifest at root/name, with every image its path column names (paths with '..' excepted)."""
    if path_column in header:
        column = header.index(path_column)
        for i, row in enumerate(rows):
            if row[column].strip() and ".." not in row[column]:
                png(root / row[column].strip(), shade=10 * i)
    return write_csv(root / name, header, rows)


def load(path: Path, query: str = "") -> Dataset:
    return load_manifest(DATASETS.parse(f"manifest:{path}" + (f"?{query}" if query else "")))


def error(path: Path, query: str = "", kind: type[Exception] = DatasetError) -> str:
    with pytest.raises(kind) as info:
        load(path, query)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- loading ---------------------------------------------------------------------------------------


def test_registry_resolves_manifest_to_the_loader():
    assert DATASETS.factory("manifest") is load_manifest


def test_csv_manifest_loads(tmp_path):
    path = tree(tmp_path)
    dataset = load(path)
    assert dataset.name == "faces"
    assert dataset.root == tmp_path.resolve()
    assert dataset.attributes == ("race", "gender")
    assert dataset.emotions == ("anger", "fear", "happiness")  # the canonical order, only those present
    assert str(path) in dataset.description
    expected = [[*row[:2], row[2].lower(), *row[3:]] for row in ROWS]
    assert dataset.samples[HEADER].values.tolist() == expected
    assert list(dataset.samples.index) == list(range(len(ROWS)))


def test_cells_are_stripped(tmp_path):
    rows = [[" s1 ", " images/s1.png", " Anger ", "p1 ", " Black ", "female"]]
    png(tmp_path / "images/s1.png")
    dataset = load(write_csv(tmp_path / "m.csv", HEADER, rows))
    assert dataset.samples[HEADER].values.tolist() == [["s1", "images/s1.png", "anger", "p1", "Black", "female"]]


def test_parquet_manifest_loads_like_the_csv(tmp_path):
    tree(tmp_path)
    columns = {name: [row[i] for row in ROWS] for i, name in enumerate(HEADER)}
    columns["subject_id"] = [1, 1, 2, 3]  # non-string columns arrive as text
    parquet = load(write_parquet(tmp_path / "faces.parquet", columns))
    assert parquet.name == "faces"
    assert parquet.attributes == ("race", "gender")
    assert parquet.samples["subject_id"].tolist() == ["1", "1", "2", "3"]
    assert parquet.samples["emotion"].tolist() == ["anger", "fear", "anger", "happiness"]
    assert parquet.samples["race"].tolist() == ["Black", "Black", "White", "White"]


def test_parquet_null_is_an_empty_cell(tmp_path):
    tree(tmp_path)
    columns = {name: [row[i] for row in ROWS] for i, name in enumerate(HEADER)}
    columns["race"] = ["Black", None, "White", "White"]
    path = write_parquet(tmp_path / "faces.parquet", columns)
    assert error(path) == (
        f"manifest {path}: attribute 'race' has no value for 1 sample(s) (first: row 2, sample s2; {MISSING}); {FILL}"
    )


def test_column_mapping(tmp_path):
    header = ["id", "file", "expr", "person", "race"]
    rows = [["a", "a.png", "anger", "p1", "Black"], ["b", "b.png", "fear", "p2", "White"]]
    path = tree(tmp_path, header, rows, path_column="file")
    dataset = load(path, "emotion=expr&subject_id=person&sample_id=id&path=file")
    assert dataset.samples[["sample_id", "path", "emotion", "subject_id", "race"]].values.tolist() == rows
    assert dataset.attributes == ("race",)
    for raw in ("id", "file", "expr", "person"):
        assert raw not in dataset.samples.columns


def test_mapped_column_that_is_absent(tmp_path):
    path = tree(tmp_path)
    assert error(path, "emotion=expression") == (
        f"manifest {path}: ?emotion=expression names a column the file lacks "
        "(file has: sample_id, path, emotion, subject_id, race, gender)"
    )


def test_mapping_onto_a_column_the_file_already_has(tmp_path):
    header = ["sample_id", "path", "emotion", "expr", "subject_id"]
    path = tree(tmp_path, header, [["a", "a.png", "AN", "anger", "p1"]])
    message = error(path, "emotion=expr")
    assert str(path) in message and "emotion" in message


def test_name_option(tmp_path):
    assert load(tree(tmp_path), "name=study").name == "study"


def test_attributes_option_limits_the_attributes(tmp_path):
    dataset = load(tree(tmp_path), "attributes=race")
    assert dataset.attributes == ("race",)
    assert "gender" in dataset.samples.columns  # kept, just not compared


def test_attributes_option_with_several_names(tmp_path):
    assert load(tree(tmp_path), "attributes=gender,race").attributes == ("gender", "race")


def test_attributes_option_naming_an_absent_column(tmp_path):
    path = tree(tmp_path)
    assert error(path, "attributes=ethnicity") == (
        f"manifest {path}: attribute column(s) ethnicity not found "
        "(columns: sample_id, path, emotion, subject_id, race, gender)"
    )


def test_source_columns_are_not_attributes(tmp_path):
    header = [*HEADER, "source_code", "source_mouth"]
    rows = [[*row, "A-HC", "open"] for row in ROWS]
    dataset = load(tree(tmp_path, header, rows))
    assert dataset.attributes == ("race", "gender")
    assert dataset.samples["source_code"].tolist() == ["A-HC"] * len(ROWS)  # kept as facts
    # an empty source fact is not an error: it is no attribute
    rows[0][-1] = ""
    assert load(tree(tmp_path, header, rows, name="again.csv")).attributes == ("race", "gender")


def test_a_dataset_may_have_no_attribute_columns(tmp_path):
    rows = [row[:4] for row in ROWS]
    assert load(tree(tmp_path, HEADER[:4], rows)).attributes == ()


# --- validation messages ------------------------------------------------------------------------


def test_missing_required_columns(tmp_path):
    path = tree(tmp_path, ["sample_id", "path", "expr", "race"], [["a", "a.png", "anger", "Black"]])
    assert error(path) == (
        f"manifest {path}: missing required column(s) emotion, subject_id; a sample table needs "
        "sample_id, path, emotion, subject_id (found: sample_id, path, expr, race); "
        "map differently named columns with ?emotion=COLUMN"
    )


@pytest.mark.parametrize("blank", ["", "   ", "NA", "null"])
def test_empty_required_cell_names_the_file_line(tmp_path, blank):
    rows = [list(r) for r in ROWS]
    rows[1][2] = blank  # second data row: line 3 of the file
    rows[3][2] = blank  # line 5
    path = tree(tmp_path, HEADER, rows)
    assert error(path) == f"manifest {path}: column 'emotion' has no value in 2 row(s) (rows 2, 4; {MISSING})"


def test_empty_sample_id(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][0] = ""
    path = tree(tmp_path, HEADER, rows)
    assert error(path) == f"manifest {path}: column 'sample_id' has no value in 1 row(s) (rows 1; {MISSING})"


def test_duplicate_ids(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[2][0] = "s1"
    rows[3][0] = " s2"  # a duplicate once stripped
    path = tree(tmp_path, HEADER, rows)
    assert error(path) == f"manifest {path}: duplicate sample_id values (s1, s2); every sample needs a unique id"


def test_labels_outside_the_vocabulary(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][2] = "Joy"
    rows[2][2] = "angry"
    path = tree(tmp_path, HEADER, rows)
    assert error(path) == (
        f"manifest {path}: emotion label(s) 'angry', 'joy' are not in the vocabulary "
        f"({', '.join(EMOTIONS)}); map them to canonical names first"
    )


def test_attribute_with_no_value(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[2][4] = ""
    rows[3][4] = " "
    path = tree(tmp_path, HEADER, rows)
    assert error(path) == (
        f"manifest {path}: attribute 'race' has no value for 2 sample(s) (first: row 3, sample s3; {MISSING}); {FILL}"
    )


def test_missing_image(tmp_path):
    path = tree(tmp_path)
    (tmp_path / "images/s2.png").unlink()
    (tmp_path / "images/s4.png").unlink()
    assert error(path) == (
        f"manifest {path}: 2 image file(s) not found under {tmp_path.resolve()} (e.g. images/s2.png, images/s4.png); "
        "check the path column: paths are relative to the manifest's folder"
    )


def test_a_folder_is_not_an_image(tmp_path):
    path = tree(tmp_path)
    (tmp_path / "images/s1.png").unlink()
    (tmp_path / "images/s1.png").mkdir()
    assert "1 image file(s) not found" in error(path)


def test_path_escaping_the_root_with_dotdot(tmp_path):
    root = tmp_path / "set"
    png(tmp_path / "outside.png")  # exists: the error is the escape, not a missing file
    rows = [list(r) for r in ROWS]
    rows[1][1] = "../outside.png"
    rows[2][1] = "images/../../outside.png"
    path = tree(root, HEADER, rows)
    assert error(path) == (
        f"manifest {path}: 2 path(s) leave the dataset folder {root.resolve()} (e.g. ../outside.png); "
        "paths must be relative to the manifest's folder and stay inside it"
    )


def test_dotdot_that_stays_inside_is_fine(tmp_path):
    rows = [list(r) for r in ROWS]
    path = tree(tmp_path, HEADER, rows)
    rows[0][1] = "images/../images/s1.png"
    assert len(load(write_csv(path, HEADER, rows)).samples) == len(ROWS)


def test_absolute_path_outside_the_root(tmp_path):
    root = tmp_path / "set"
    png(tmp_path / "outside.png")
    rows = [list(r) for r in ROWS]
    rows[0][1] = str(tmp_path / "outside.png")
    path = tree(root, HEADER, rows)
    assert f"1 path(s) leave the dataset folder {root.resolve()}" in error(path)


def test_symlink_inside_the_root_pointing_outside(tmp_path):
    root = tmp_path / "set"
    path = tree(root)
    png(tmp_path / "secret.png")
    (root / "images/s3.png").unlink()
    os.symlink(tmp_path / "secret.png", root / "images/s3.png")
    assert error(path) == (
        f"manifest {path}: 1 path(s) leave the dataset folder {root.resolve()} (e.g. images/s3.png); "
        "paths must be relative to the manifest's folder and stay inside it"
    )


def test_symlink_inside_the_root_pointing_inside_is_fine(tmp_path):
    path = tree(tmp_path)
    (tmp_path / "images/s3.png").unlink()
    os.symlink(tmp_path / "images/s1.png", tmp_path / "images/s3.png")
    assert len(load(path).samples) == len(ROWS)


def test_manifest_reached_through_a_symlinked_folder(tmp_path):
    real = tmp_path / "real"
    tree(real)
    os.symlink(real, tmp_path / "link")
    dataset = load(tmp_path / "link" / "faces.csv")
    assert dataset.root == real.resolve()


def test_unknown_option(tmp_path):
    path = tree(tmp_path)
    message = error(path, "colour=red&name=x", kind=ConfigError)
    assert message == (
        f"dataset 'manifest:{path}?colour=red&name=x': unknown option(s) colour "
        "(allowed: name, attributes, map, on_error, sample_id, path, emotion, subject_id)"
    )


def test_missing_manifest(tmp_path):
    path = tmp_path / "nope.csv"
    assert error(path) == f"manifest file not found: {path}"


def test_wrong_suffix(tmp_path):
    path = tmp_path / "faces.json"
    path.write_text("{}")
    assert error(path) == f"manifest file {path}: expected a .csv or .parquet file"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("faces.parquet", b"PAR1 this is not a parquet file"),
        ("faces.csv", bytes(range(128, 256)) * 3),  # not UTF-8
        ("faces.csv", b""),
    ],
    ids=["garbage-parquet", "binary-csv", "empty-csv"],
)
def test_unreadable_manifest_names_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert error(path).startswith(f"manifest file {path} could not be read: ")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_manifest_without_read_permission(tmp_path):
    path = tree(tmp_path)
    path.chmod(0)
    try:
        assert error(path).startswith(f"manifest file {path} could not be read: ")
    finally:
        path.chmod(0o644)


def test_manifest_with_no_rows(tmp_path):
    path = tree(tmp_path, HEADER, [])
    message = error(path)
    assert str(path) in message


def test_parquet_with_a_string_index_reports_the_empty_cell(tmp_path):
    import pandas as pd

    tree(tmp_path)
    frame = pd.DataFrame([r[:4] for r in ROWS], columns=HEADER[:4], index=["r1", "r2", "r3", "r4"])
    frame.loc["r2", "emotion"] = ""
    path = tmp_path / "faces.parquet"
    frame.to_parquet(path)
    assert "column 'emotion' has no value in 1 row(s)" in error(path)


def test_every_loader_error_is_a_fairness_error(tmp_path):
    assert issubclass(DatasetError, FairnessError)
    assert issubclass(ConfigError, FairnessError)


# --- the fingerprint -----------------------------------------------------------------------------


def test_fingerprint_follows_the_data_not_the_row_order(tmp_path):
    path = tree(tmp_path)
    first = load(path).fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert load(write_csv(tmp_path / "reordered.csv", HEADER, ROWS[::-1])).fingerprint() == first
    png(tmp_path / "images/s2.png", shade=255)  # same names, different pixels
    assert load(path).fingerprint() != first


def test_digests_through_the_store_open_no_unchanged_image_again(tmp_path, monkeypatch):
    import builtins
    import hashlib
    import io

    from fer_fairness import _digests

    monkeypatch.setattr(_digests, "RACY_NS", -(10**12))  # files just written count as settled
    path = tree(tmp_path)
    expected = [hashlib.sha256((tmp_path / "images" / f"s{i}.png").read_bytes()).hexdigest() for i in range(1, 5)]
    cold = load(path)
    cold.remember_digests(tmp_path / "cache")
    assert list(cold.image_digests) == expected
    opened, original = [], builtins.open

    def counted(file, *args, **kwargs):
        if str(file).endswith(".png"):
            opened.append(str(file))
        return original(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counted)
    monkeypatch.setattr(io, "open", counted)
    warm = load(path)  # a new run: loading checks decoding, so count only what the digests open
    opened.clear()
    warm.remember_digests(tmp_path / "cache")
    assert list(warm.image_digests) == expected and opened == []
    png(tmp_path / "images/s2.png", shade=255)  # new bytes, new mtime
    changed = load(path)
    opened.clear()
    changed.remember_digests(tmp_path / "cache")
    digests = list(changed.image_digests)
    assert [Path(o).name for o in opened] == ["s2.png"]  # the changed file alone is read again
    assert digests[1] == hashlib.sha256((tmp_path / "images/s2.png").read_bytes()).hexdigest() != expected[1]


def test_fingerprint_is_its_definition_written_row_by_row(tmp_path, monkeypatch):
    # The oracle: the definition in plain Python (rows sorted by sample id as Python sorts text; per
    # column "\x1f".join of the values, framed by name and length; then every image's 32 digest bytes,
    # zeros for an absent file), on ids and values Arrow must order and encode as Python does.
    import hashlib

    rows = [
        ["é1", "images/a.png", "anger", "p1", "Black", "female"],
        ["z9", "images/b.png", "fear", "p2", "名前", "male"],
        ["E2", "images/c.png", "anger", "p1", "Black", "female"],
        ["😀", "images/d.png", "happiness", "p3", "White, Irish", "female"],
        ["a b", "images/e.png", "anger", "p3", "White, Irish", "male"],
    ]
    path = tree(tmp_path, rows=rows)
    dataset = load(path)
    samples = dataset.samples
    order = sorted(range(len(samples)), key=lambda i: str(samples["sample_id"].iloc[i]))
    digest = hashlib.sha256()
    for column in ["sample_id", "path", "emotion", "subject_id", *dataset.attributes]:
        values = [str(samples[column].iloc[i]) for i in order]
        digest.update(f"{column}\x1d{len(values)}\x1d".encode())
        digest.update("\x1f".join(values).encode())
        digest.update(b"\x1e")
    for i in order:
        digest.update(hashlib.sha256((tmp_path / samples["path"].iloc[i]).read_bytes()).digest())
    assert dataset.fingerprint() == digest.hexdigest()[:16]
    # the same table in two pieces (as a large CSV or a concat leaves its columns) hashes alike
    pieces = dataclasses.replace(dataset, samples=pd.concat([samples.iloc[:2], samples.iloc[2:]]))
    assert pieces.fingerprint() == digest.hexdigest()[:16]
    # hashed two rows at a time (as a million rows are, in slices) the bytes are the same
    from fer_fairness.datasets import _table

    monkeypatch.setattr(_table, "_FINGERPRINT_ROWS", 2)
    assert load(path).fingerprint() == digest.hexdigest()[:16]


def test_fingerprint_changes_with_a_label(tmp_path):
    path = tree(tmp_path)
    first = load(path).fingerprint()
    rows = [list(r) for r in ROWS]
    rows[0][2] = "disgust"
    assert load(write_csv(path, HEADER, rows)).fingerprint() != first


def test_fingerprint_tells_which_row_and_column_a_value_is_in(tmp_path):
    path = tree(tmp_path)
    first = load(path).fingerprint()
    swapped = [list(r) for r in ROWS]
    swapped[0][4], swapped[2][4] = swapped[2][4], swapped[0][4]  # the same races, on other faces
    assert load(write_csv(path, HEADER, swapped)).fingerprint() != first
    crossed = [[*r[:4], r[5], r[4]] for r in ROWS]  # the same values, race and gender columns exchanged
    assert load(write_csv(path, HEADER, crossed)).fingerprint() != first


# --- images that do not decode ----------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])  # the PNG signature and part of its header: no image


def test_an_image_that_does_not_decode_stops_the_load(tmp_path):
    path = tree(tmp_path)
    _truncate(tmp_path / "images/s3.png")
    message = error(path)
    assert message.startswith(f"manifest {path}: 1 image(s) cannot be decoded (e.g. images/s3.png: ")
    assert message.endswith("or add ?on_error=exclude to leave them out and list them in the report")


def test_with_exclude_an_undecodable_image_is_left_out_and_listed(tmp_path):
    path = tree(tmp_path)
    _truncate(tmp_path / "images/s3.png")
    dataset = load(path, "on_error=exclude")
    assert sorted(dataset.samples["sample_id"]) == ["s1", "s2", "s4"]
    [row] = dataset.exclusions.to_dict("records")
    expected = ("images/s3.png", "unreadable image", "White", "male")
    assert (row["path"], row["reason"], row["race"], row["gender"]) == expected


def test_decoding_is_remembered_per_file_version(tmp_path, monkeypatch):
    import fer_fairness.datasets.manifest as manifest

    path = tree(tmp_path)
    calls = []
    real = manifest.decode_problem
    monkeypatch.setattr(manifest, "decode_problem", lambda p: calls.append(p.name) or real(p))
    spec = DATASETS.parse(f"manifest:{path}")
    cache = tmp_path / "cache"
    load_manifest(spec, cache_dir=cache)
    assert sorted(calls) == ["s1.png", "s2.png", "s3.png", "s4.png"]
    load_manifest(spec, cache_dir=cache)  # nothing changed: nothing decoded again
    assert len(calls) == 4
    _truncate(tmp_path / "images/s2.png")  # a new version of one file is checked again, and caught
    with pytest.raises(DatasetError, match="images/s2.png"):
        load_manifest(spec, cache_dir=cache)
    assert calls[4:] == ["s2.png"]
