"""The per-folder path check and the per-file digest give the per-row answers, whatever the layout."""

from __future__ import annotations

import hashlib
import os

import pandas as pd
import pytest

from fer_fairness.datasets._table import Dataset
from fer_fairness.datasets.manifest import _path_problems
from fer_fairness.errors import DatasetError


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "set"
    (root / "img" / "sub").mkdir(parents=True)
    (root / "img" / "a.png").write_bytes(b"a")
    (root / "top.png").write_bytes(b"t")
    (tmp_path / "outside.png").write_bytes(b"o")
    os.symlink(tmp_path / "outside.png", root / "img" / "leak.png")
    os.symlink(root / "img" / "a.png", root / "img" / "alias.png")
    os.symlink(tmp_path, root / "up")
    return root.resolve()


def test_verdicts_per_layout(tree):
    expected = {
        "img/a.png": None,
        "top.png": None,
        "img/alias.png": None,  # a symlink that stays inside
        "img/leak.png": "escapes",  # a symlinked file pointing out
        "up/outside.png": "escapes",  # through a symlinked folder
        "img/../../outside.png": "escapes",
        "img/../top.png": None,
        "img/gone.png": "missing",
        "nofolder/x.png": "missing",
        "img/sub": "missing",  # a folder is no image
        "img/": "missing",
    }
    assert _path_problems(list(expected), root=tree) == expected


def test_manifest_counts_every_row_of_a_missing_file(tree):
    from fer_fairness.datasets.manifest import _check_paths

    samples = pd.DataFrame({"path": ["img/a.png", "img/gone.png", "img/gone.png", "img/a.png"]})
    with pytest.raises(DatasetError, match=r"2 image file\(s\) not found .*img/gone.png, img/gone.png"):
        _check_paths(samples, root=tree, source="m")


def test_digests_shared_files_read_once_and_follow_changes(tree):
    samples = pd.DataFrame({"path": ["img/a.png", "top.png", "img/a.png", "img/gone.png"]}, index=[3, 1, 2, 0])
    dataset = Dataset(name="d", root=tree, samples=samples, attributes=(), emotions=())
    sha = {b: hashlib.sha256(b).hexdigest() for b in (b"a", b"t", b"A")}
    assert dataset.image_digests.to_dict() == {3: sha[b"a"], 1: sha[b"t"], 2: sha[b"a"], 0: ""}
    (tree / "img" / "a.png").write_bytes(b"A")
    fresh = Dataset(name="d", root=tree, samples=samples, attributes=(), emotions=())
    assert fresh.image_digests[3] == fresh.image_digests[2] == sha[b"A"]
