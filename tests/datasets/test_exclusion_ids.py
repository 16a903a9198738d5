"""Every folder loader's exclusions name the sample id the image would have had.

The pipeline sets a predictions file's answers for excluded samples aside by that id, so an excluded
image must carry the id it gets once repaired: each case writes the id out by hand from the set's
naming, and checks it against a load of the repaired tree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.datasets.trees import cfd_path, corrupt, load, write_image, write_images, write_rafdb

RAFDB = [("train_00001.jpg", 1, (0, 0, 2)), ("train_00002.jpg", 4, (1, 1, 0)), ("test_0001.jpg", 6, (1, 2, 3))]


def _cfd(root: Path) -> tuple[str, Callable[[], None]]:
    write_images(root, [cfd_path(n) for n in ("CFD-AF-200-228-N.jpg", "CFD-WM-40-22-N.jpg")])
    broken = corrupt(root / cfd_path("CFD-WM-40-22-N.jpg"))
    return f"cfd:{root}", lambda: write_image(broken)


def _radiate(root: Path) -> tuple[str, Callable[[], None]]:
    write_images(root, ["Black/BF07_AO.jpg", "White/wm12_nc.png"])
    broken = corrupt(root / "White/wm12_nc.png")
    return f"radiate:{root}", lambda: write_image(broken)


def _faceplace(root: Path) -> tuple[str, Callable[[], None]]:
    write_images(root, ["asian/ab_1_happy.jpg", "caucasian/ef_3_SU.jpg"])
    broken = corrupt(root / "caucasian/ef_3_SU.jpg")
    return f"faceplace:{root}", lambda: write_image(broken)


def _rafdb(root: Path) -> tuple[str, Callable[[], None]]:
    write_rafdb(root, RAFDB)
    attributes = root / "Annotation/manual/test_0001_manu_attri.txt"
    kept = attributes.read_text()
    attributes.unlink()  # flagged by the loader itself, before any row exists
    return f"rafdb:{root}", lambda: attributes.write_text(kept)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (_cfd, "CFD-WM-040-022-N"),  # CFD ids zero-pad the irregular names' numbers
        (_radiate, "WM12_NC"),  # RADIATE ids are upper case whatever the file's case
        (_faceplace, "ef_3_SU"),
        (_rafdb, "test_0001"),
    ],
    ids=["cfd", "radiate", "faceplace", "rafdb"],
)
def test_an_excluded_image_carries_the_id_it_has_once_repaired(tmp_path, build, expected):
    spec, repair = build(tmp_path)
    dataset = load(f"{spec}?on_error=exclude")
    assert dataset.exclusions["sample_id"].tolist() == [expected]
    assert expected not in set(dataset.samples["sample_id"])
    repair()
    assert expected in set(load(spec).samples["sample_id"])


def test_a_name_the_loader_cannot_read_but_can_place_keeps_its_id(tmp_path):
    """A CFD name with an unknown race letter still says which sample it would be; one that does not
    parse at all has no id (None, never a made-up one)."""
    write_images(tmp_path, [cfd_path(n) for n in ("CFD-AF-200-228-N.jpg", "CFD-XM-001-014-A.jpg")])
    write_image(tmp_path / "Images/CFD/stray.jpg")
    dataset = load(f"cfd:{tmp_path}?on_error=exclude")
    ids = dict(zip(dataset.exclusions["path"], dataset.exclusions["sample_id"], strict=True))
    assert ids == {"Images/CFD/XM-001/CFD-XM-001-014-A.jpg": "CFD-XM-001-014-A", "Images/CFD/stray.jpg": None}
