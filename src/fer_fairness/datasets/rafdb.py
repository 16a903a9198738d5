"""RAF-DB, basic emotions: ``rafdb:ROOT[?split=train|test|all&images=aligned|original]``.

ROOT is the ``basic`` folder (or the folder holding it)::

    EmoLabel/list_patition_label.txt          train_00001.jpg 5   (1..7, see LABELS)
    Image/aligned/train_00001_aligned.jpg     or Image/original/train_00001.jpg
    Annotation/manual/train_00001_manu_attri.txt

Each manual attribute file holds five landmark lines (x y), then one code per line: gender (0 male,
1 female, 2 unsure), race (0 Caucasian, 1 African-American, 2 Asian) and age bin (0-4). RAF-DB has no
identity labels, so each image is its own subject.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer_fairness.datasets._hygiene import COMMON_OPTIONS, Checker, dataset_root, excluding, finish
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError, DatasetError
from fer_fairness.specs import Spec, check_options

OPTIONS = (*COMMON_OPTIONS, "split", "images")
USAGE = "rafdb:/data/RAF-DB/basic"
LABEL_LIST = "EmoLabel/list_patition_label.txt"  # sic: the file's name in the release
LABELS = {
    "1": "surprise",
    "2": "fear",
    "3": "disgust",
    "4": "happiness",
    "5": "sadness",
    "6": "anger",
    "7": "neutral",
}
# Attribute -> {code: value}, in the order the codes appear in a manual attribute file.
CODES = {
    "gender": {"0": "male", "1": "female", "2": "unsure"},
    "race": {"0": "White", "1": "Black", "2": "Asian"},  # the file's Caucasian, African-American, Asian
    "age": {"0": "0-3", "1": "4-19", "2": "20-39", "3": "40-69", "4": "70+"},
}
ATTRIBUTES = tuple(CODES)
SPLITS = ("all", "train", "test")
IMAGES = ("aligned", "original")


def load_rafdb(spec: Spec, **_context) -> Dataset:
    """Registry entry for ``rafdb:ROOT``."""
    check_options(spec, OPTIONS, what="dataset")
    split = _choice(spec, "split", SPLITS)
    images = _choice(spec, "images", IMAGES)
    given = dataset_root(spec, usage=USAGE)
    root = given if (given / LABEL_LIST).is_file() else given / "basic"
    labels = root / LABEL_LIST
    if not labels.is_file():
        raise DatasetError(
            f"rafdb {given}: label list {LABEL_LIST} not found there or under basic/; "
            "point ROOT at RAF-DB's basic folder"
        )
    source = f"rafdb {root}"
    checker = Checker(
        source=source,
        root=root,
        attributes=ATTRIBUTES,
        exclude=excluding(spec),
        todo={
            "missing": f"restore them from the original download, or choose the other copy with "
            f"?images={'original' if images == 'aligned' else 'aligned'}",
            "label": f"the labels are 1 to 7 ({', '.join(f'{k} {v}' for k, v in LABELS.items())})",
            "no_value": "restore the manual attribute files (Annotation/manual) from the original download",
        },
    )
    rows = []
    for name, code in _label_list(labels):
        stem = Path(name).stem
        if split != "all" and not stem.startswith(f"{split}_"):
            continue
        rel = f"Image/aligned/{stem}_aligned.jpg" if images == "aligned" else f"Image/original/{name}"
        attributes = _attributes(root, stem, rel, checker)
        if attributes is None:
            continue
        rows.append(
            {
                "sample_id": stem,
                "path": rel,
                "emotion": LABELS.get(code, f"label {code}"),  # an unknown label fails the label check
                "subject_id": stem,
                **attributes,
                "source_label": code,
                "source_split": stem.split("_", 1)[0],
            }
        )

    def describe(samples: pd.DataFrame) -> str:
        return (
            f"RAF-DB basic ({split}, {images} images) at {root}: {len(samples)} images; gender, race and age "
            "bin from the manual attribute files; each image its own subject (no identity labels)"
        )

    return finish(rows, checker=checker, name=spec.option("name") or "rafdb", describe=describe)


def _choice(spec: Spec, option: str, allowed: tuple[str, ...]) -> str:
    value = spec.option(option, allowed[0])
    if value not in allowed:
        raise ConfigError(f"dataset '{spec.text}': {option} must be one of {', '.join(allowed)}; got '{value}'")
    return value


def _label_list(path: Path) -> list[tuple[str, str]]:
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"rafdb: label list {path} could not be read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(
                f"rafdb: label list {path} line {number}: expected '<image> <label>', got {line.strip()!r}; "
                "restore the file from the original download"
            )
        entries.append((parts[0], parts[1]))
    if not entries:
        raise DatasetError(f"rafdb: label list {path} is empty; restore it from the original download")
    return entries


def _attributes(root: Path, stem: str, rel: str, checker: Checker) -> dict[str, str] | None:
    """The image's gender, race and age, or None after flagging why they cannot be read."""
    path = root / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        checker.flag("no_value", rel, f"no readable attribute file {path.relative_to(root).as_posix()}", sample_id=stem)
        return None
    codes = [line.strip() for line in lines if len(line.split()) == 1]  # landmark lines have two numbers
    values = {attribute: table.get(code) for (attribute, table), code in zip(CODES.items(), codes, strict=False)}
    bad = [a for a in ATTRIBUTES if values.get(a) is None]
    if bad:
        given = ", ".join(f"{a} {codes[i] if i < len(codes) else 'missing'}" for i, a in enumerate(ATTRIBUTES))
        checker.flag(
            "no_value", rel, f"{path.name} gives {given}; expected codes {_expected()}", sample_id=stem, **values
        )
        return None
    return values


def _expected() -> str:
    return "; ".join(f"{a} {'/'.join(table)}" for a, table in CODES.items())
