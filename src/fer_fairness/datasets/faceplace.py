"""The Tarr lab's Face Place set: ``faceplace:ROOT[?pattern=REGEX&expressions=FILE]``.

Race comes from the ethnicity folder an image sits in (asian, african-american, caucasian, hispanic,
multiracial, at any depth under ROOT). Identity, expression and view come from the file name, read with
a regular expression, since releases name files differently. The default pattern assumes the naming of
release 3.0, ``{initials}_{number}_{view}`` for the pose series (``ab_1_00F.jpg``), with the expression
as the last token of the expression images: ``ab_1_happy.jpg`` or ``ab_1_00F_happy.jpg``. Images whose
name the pattern does not fit (the pose series among them) stop the load, or with ``?on_error=exclude``
are listed as exclusions. A pattern has the groups ``identity`` and ``expression`` and optionally
``view`` and ``gender`` (f/m, female/male), matched against the whole file name without its suffix;
in a spec string, write ``&`` and ``%`` in a pattern as ``%26`` and ``%25``.

Expression words map to labels through the table below (case-insensitive); ``?expressions=FILE`` (CSV
``expression,emotion`` or TOML ``word = "label"``) extends or overrides it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pandas as pd

from fer_fairness.datasets._hygiene import (
    COMMON_OPTIONS,
    Checker,
    dataset_root,
    excluding,
    finish,
    no_images,
)
from fer_fairness.datasets._mapping import read_mapping
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError
from fer_fairness.specs import Spec, check_options

OPTIONS = (*COMMON_OPTIONS, "pattern", "expressions")
USAGE = "faceplace:/data/face-place"
DEFAULT_PATTERN = r"(?P<identity>[^_]+_[^_]+)(?:_(?P<view>\d{2}[FLR]))?_(?P<expression>[A-Za-z]+)"
# Ethnicity folder (lower case) -> race; the release 3.0 read-me and some copies say "black".
FOLDERS = {
    "asian": "Asian",
    "african-american": "Black",
    "africanamerican": "Black",
    "black": "Black",
    "caucasian": "White",
    "hispanic": "Hispanic",
    "multiracial": "Multiracial",
}
GENDERS = {"F": "female", "FEMALE": "female", "W": "female", "M": "male", "MALE": "male"}
# Expression word (upper case) -> label: full words and the two-letter NimStim-style codes.
WORDS = {
    **dict.fromkeys(("ANGER", "ANGRY", "AN", "ANG"), "anger"),
    **dict.fromkeys(("CONTEMPT",), "contempt"),
    **dict.fromkeys(("DISGUST", "DISGUSTED", "DI", "DIS"), "disgust"),
    **dict.fromkeys(("FEAR", "FEARFUL", "AFRAID", "SCARED", "FE"), "fear"),
    **dict.fromkeys(("HAPPY", "HAPPINESS", "HA", "JOY", "SMILE"), "happiness"),
    **dict.fromkeys(("NEUTRAL", "NE", "NEU"), "neutral"),
    **dict.fromkeys(("SAD", "SADNESS", "SA"), "sadness"),
    **dict.fromkeys(("SURPRISE", "SURPRISED", "SU", "SP", "SUR"), "surprise"),
}


def load_faceplace(spec: Spec, **_context) -> Dataset:
    """Registry entry for ``faceplace:ROOT``: every expression image under the ethnicity folders."""
    return read(spec, default_name="faceplace")


def read(spec: Spec, *, default_name: str, keep: Callable[[dict[str, str]], bool] = lambda row: True) -> Dataset:
    """Load the tree; ``keep`` selects the rows of a study view before any image is checked."""
    check_options(spec, OPTIONS, what="dataset")
    root = dataset_root(spec, usage=USAGE)
    source = f"{spec.kind} {root}"
    pattern = _pattern(spec)
    words = dict(WORDS)
    if spec.option("expressions"):
        mapping = read_mapping(Path(spec.option("expressions")), what="Face Place expression file", key="expression")
        words.update({raw: entry["emotion"] for raw, entry in mapping.items()})
    attributes = ("race", "gender") if "gender" in pattern.groupindex else ("race",)
    checker = Checker(
        source=source,
        root=root,
        attributes=attributes,
        exclude=excluding(spec),
        todo={
            "naming": "set ?pattern= to your release's naming (groups identity, expression, optional view and "
            "gender), move them out, or exclude them if they are not expression images",
            "label": "map the expression words with ?expressions=FILE (CSV header expression,emotion)",
            "no_value": f"put each image under an ethnicity folder ({', '.join(sorted(FOLDERS))}); where the "
            "pattern reads gender, it must be f, m, female or male",
        },
    )
    files = checker.image_files()
    if not files:
        raise no_images(source, root, f"ethnicity folders {', '.join(sorted(FOLDERS))}")
    rows = [row for rel in files if (row := _parse(rel, pattern, words, checker)) is not None and keep(row)]

    def describe(samples: pd.DataFrame) -> str:
        races = ", ".join(sorted(samples["race"].unique()))
        return (
            f"Face Place (Tarr lab) at {root}: {len(samples)} expression images of "
            f"{samples['subject_id'].nunique()} people; race ({races}) from the ethnicity folders, identity, "
            f"expression and view from the file names (pattern {pattern.pattern})"
        )

    return finish(rows, checker=checker, name=spec.option("name") or default_name, describe=describe)


def _pattern(spec: Spec) -> re.Pattern[str]:
    text = spec.option("pattern") or DEFAULT_PATTERN
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ConfigError(f"dataset '{spec.text}': ?pattern= is not a valid regular expression ({exc})") from None
    missing = [g for g in ("identity", "expression") if g not in pattern.groupindex]
    if missing:
        raise ConfigError(
            f"dataset '{spec.text}': ?pattern= needs the named group(s) {', '.join(missing)}, "
            "e.g. (?P<identity>[^_]+_[^_]+)_(?P<expression>[a-z]+)"
        )
    return pattern


def _parse(rel: str, pattern: re.Pattern[str], words: dict[str, str], checker: Checker) -> dict[str, str] | None:
    path = PurePosixPath(rel)
    race = next((FOLDERS[p.lower()] for p in reversed(path.parts[:-1]) if p.lower() in FOLDERS), "")
    match = pattern.fullmatch(path.stem)
    if match is None:
        checker.flag("naming", rel, f"does not match {pattern.pattern}", sample_id=path.stem, race=race)
        return None
    found = match.groupdict()
    raw = found["expression"] or ""
    gender = GENDERS.get((found.get("gender") or "").upper(), "")
    row = {
        "sample_id": path.stem,
        "path": rel,
        "emotion": words.get(raw.upper(), f"expression {raw}"),  # an unknown word fails the label check
        "subject_id": found["identity"],
        "race": race,
        "source_expression": raw,
        "source_view": found.get("view") or "",
        "source_folder": path.parent.as_posix(),
    }
    if "gender" in pattern.groupindex:
        row["gender"] = gender
    return row
