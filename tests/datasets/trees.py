"""Builders of small dataset trees that follow each licensed set's naming (tiny generated images)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

from fer_fairness.datasets import DATASETS
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import DatasetError, DatasetWarning

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}


@cache
def _image_bytes(suffix: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), color=(120, 80, 40)).save(buffer, format=_FORMATS[suffix.lower()])
    return buffer.getvalue()


def write_image(path: Path) -> Path:
    """A 2x2 image in the format its suffix names (the same bytes every time: fast for big trees)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_image_bytes(path.suffix))
    return path


def write_images(root: Path, paths: Iterable[str]) -> Path:
    for rel in paths:
        write_image(root / rel)
    return root


def corrupt(path: Path) -> Path:
    """Overwrite an image with bytes no decoder recognises."""
    path.write_bytes(b"this is not an image at all")
    return path


# --- RADIATE --------------------------------------------------------------------------------------


def radiate_names(count: int, codes: Iterable[str]) -> list[str]:
    """``count`` RADIATE names, model by model (race A B H W, gender F M, NN 01..99), each with ``codes``."""
    codes = list(codes)
    names = []
    for race in "ABHW":
        for gender in "FM":
            for model in range(1, 100):
                for code in codes:
                    if len(names) == count:
                        return names
                    names.append(f"{race}{gender}{model:02d}_{code}.jpg")
    raise ValueError(f"cannot make {count} names from {len(codes)} codes")


# --- CFD ------------------------------------------------------------------------------------------


def cfd_path(name: str) -> str:
    """Where CFD 3.0 keeps an image: Images/<set>/<race gender-model>/<name>."""
    race_gender = name.split("-")[1]
    folder = {"M": "CFD-MR", "I": "CFD-INDIA"}.get(race_gender[0], "CFD")
    return f"Images/{folder}/{race_gender}-{name.split('-')[2]}/{name}"


def write_norming_workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """An .xlsx with the CFD layout: decorative rows, then the header row, then a blank row and data."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


# --- RAF-DB ---------------------------------------------------------------------------------------


def write_rafdb(root: Path, entries: list[tuple[str, int, tuple[int, int, int] | None]]) -> Path:
    """RAF-DB basic: the label list, aligned and original images, manual attribute files.

    ``entries`` are (image name, label, (gender, race, age) codes or None for no attribute file).
    """
    lines = []
    for name, label, codes in entries:
        stem = Path(name).stem
        lines.append(f"{name} {label}")
        write_image(root / "Image" / "original" / name)
        write_image(root / "Image" / "aligned" / f"{stem}_aligned.jpg")
        if codes is not None:
            landmarks = [f"{10.5 + i}\t{20.25 + i}" for i in range(5)]
            attribute = root / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
            attribute.parent.mkdir(parents=True, exist_ok=True)
            attribute.write_text("\n".join([*landmarks, *map(str, codes)]) + "\n")
    labels = root / "EmoLabel" / "list_patition_label.txt"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text("\n".join(lines) + "\n")
    return root


def load(spec: str) -> Dataset:
    """Load a dataset spec as the plugin would (study-view count warnings silenced)."""
    parsed = DATASETS.parse(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return DATASETS.factory(parsed.kind)(parsed, cache_dir=None, seed=0, progress=False)


def error(spec: str, kind: type[Exception] = DatasetError) -> str:
    """The one-line message loading ``spec`` fails with."""
    with pytest.raises(kind) as info:
        load(spec)
    assert "\n" not in str(info.value)
    return str(info.value)
