"""RADIATE (Conley et al. 2018): ``radiate:ROOT[?codes=FILE&on_error=exclude&name=N]``.

Images are named ``{race}{gender}{NN}_{CODE}`` (e.g. ``BF07_AO.jpg``): race A, B, H, W; gender F, M;
CODE is an emotion letter and a mouth letter (O open, C closed; E the exuberant, open-mouthed happy).
The folders above the images do not matter.

The code table is declared once, below. The codes seen in public use (AC AO FC FO HC HO HE NC) are
confirmed. The rest follow the NimStim set RADIATE was modelled on (NE, DI, SA, SP, CA, with open and
closed mouths, surprise open only): D disgust, S sadness, P surprise, C calm, and neutral open. They
are assumptions: loading images that carry them warns, and a code file (``?codes=FILE``) extends or
overrides the table; codes declared there count as confirmed.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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
from fer_fairness.errors import DatasetError, DatasetWarning
from fer_fairness.specs import Spec, check_options

OPTIONS = (*COMMON_OPTIONS, "codes")
USAGE = "radiate:/data/RADIATE"
NAMING = "{race}{gender}{NN}_{CODE}, e.g. BF07_AO.jpg"
ATTRIBUTES = ("race", "gender")
RACES = {"A": "Asian", "B": "Black", "H": "Hispanic", "W": "White"}
GENDERS = {"F": "female", "M": "male"}
MOUTHS = {"O": "open", "C": "closed", "E": "exuberant"}


@dataclass(frozen=True)
class Code:
    emotion: str
    mouth: str
    confirmed: bool


def _code(emotion: str, mouth: str, *, confirmed: bool) -> Code:
    return Code(emotion, MOUTHS[mouth], confirmed)


# The one RADIATE code table. Only the confirmed codes have been seen in public use.
CODES: dict[str, Code] = {
    "AC": _code("anger", "C", confirmed=True),
    "AO": _code("anger", "O", confirmed=True),
    "FC": _code("fear", "C", confirmed=True),
    "FO": _code("fear", "O", confirmed=True),
    "HC": _code("happiness", "C", confirmed=True),
    "HO": _code("happiness", "O", confirmed=True),
    "HE": _code("happiness", "E", confirmed=True),
    "NC": _code("neutral", "C", confirmed=True),
    "NO": _code("neutral", "O", confirmed=False),
    "DC": _code("disgust", "C", confirmed=False),
    "DO": _code("disgust", "O", confirmed=False),
    "SC": _code("sadness", "C", confirmed=False),
    "SO": _code("sadness", "O", confirmed=False),
    "PO": _code("surprise", "O", confirmed=False),
    "CC": _code("calm", "C", confirmed=False),
    "CO": _code("calm", "O", confirmed=False),
}

_NAME = re.compile(r"(?P<race>[A-Za-z])(?P<gender>[A-Za-z])(?P<model>\d{1,3})_(?P<code>[A-Za-z0-9]+)")


def load_radiate(spec: Spec, **_context) -> Dataset:
    """Registry entry for ``radiate:ROOT``: every image of the set."""
    return read(spec, default_name="radiate")


def read(spec: Spec, *, default_name: str, keep: Callable[[dict[str, str]], bool] = lambda row: True) -> Dataset:
    """Load the tree; ``keep`` selects the rows of a study view before any image is checked."""
    check_options(spec, OPTIONS, what="dataset")
    root = dataset_root(spec, usage=USAGE)
    source = f"{spec.kind} {root}"
    table = code_table(spec)
    checker = Checker(
        source=source,
        root=root,
        attributes=ATTRIBUTES,
        exclude=excluding(spec),
        todo={"naming": f"name them {NAMING} or move them out of the folder"},
    )
    files = checker.image_files()
    if not files:
        raise no_images(source, root, NAMING)
    rows, unknown = [], {}
    for rel in files:
        row = _parse(rel, checker)
        if row is None:
            continue
        code = table.get(row["source_code"])
        if code is None:
            unknown.setdefault(row["source_code"], []).append(rel)
            continue
        row.update(emotion=code.emotion, source_mouth=code.mouth)
        if keep(row):
            rows.append(row)
    if unknown:
        raise unknown_codes_error(source, unknown, table)
    assumed = sorted({r["source_code"] for r in rows if not table[r["source_code"]].confirmed})
    notes = [_assumed_note(source, assumed, rows, table)] if assumed else []
    extended = f"; code table extended by {spec.option('codes')}" if spec.option("codes") else ""

    def describe(samples: pd.DataFrame) -> str:
        return (
            f"RADIATE (Racially Diverse Affective Expression set) at {root}: {len(samples)} images of "
            f"{samples['subject_id'].nunique()} models; race (Asian, Black, Hispanic, White) and gender from "
            f"the file names, emotion from the expression code, mouth in source_mouth{extended}"
        )

    dataset = finish(rows, checker=checker, name=spec.option("name") or default_name, describe=describe, notes=notes)
    for note in notes:
        warnings.warn(DatasetWarning(note), stacklevel=2)
    return dataset


def code_table(spec: Spec) -> dict[str, Code]:
    """The declared table, extended or overridden by ``?codes=FILE`` (whose codes count as confirmed)."""
    table = dict(CODES)
    path = spec.option("codes")
    if path:
        entries = read_mapping(Path(path), what="RADIATE code file", key="code", fields=("emotion", "mouth"))
        for raw, entry in entries.items():
            mouth = entry.get("mouth") or MOUTHS.get(raw[-1:], "")
            table[raw] = Code(entry["emotion"], MOUTHS.get(mouth.upper(), mouth.lower()), confirmed=True)
    return table


def unknown_codes_error(source: str, unknown: dict[str, list[str]], table: dict[str, Code]) -> DatasetError:
    """Unknown codes always stop the load: guessing a label would corrupt every statistic built on it."""
    listed = "; ".join(
        f"{code} ({len(paths)} file(s): {', '.join(PurePosixPath(p).name for p in paths[:3])}"
        f"{', ...' if len(paths) > 3 else ''})"
        for code, paths in sorted(unknown.items())
    )
    example = sorted(unknown)[0]
    return DatasetError(
        f"{source}: unknown expression code(s) {listed}; the code table knows {', '.join(sorted(table))}; "
        f"declare the missing codes in a CSV file (header code,emotion,mouth; e.g. {example},surprise,open) "
        f'or a TOML file ({example} = "surprise") and pass it as radiate:ROOT?codes=FILE'
    )


def _parse(rel: str, checker: Checker) -> dict[str, str] | None:
    stem = PurePosixPath(rel).stem
    match = _NAME.fullmatch(stem)
    if match is None:
        checker.flag("naming", rel, f"expected {NAMING}")
        return None
    race, gender = match["race"].upper(), match["gender"].upper()
    known = {"race": RACES.get(race), "gender": GENDERS.get(gender)}
    subject = f"{race}{gender}{int(match['model']):02d}"
    code = match["code"].upper()
    if race not in RACES or gender not in GENDERS:
        message = f"race must be one of {', '.join(RACES)}, gender F or M"
        checker.flag("naming", rel, message, sample_id=f"{subject}_{code}", **known)
        return None
    return {
        "sample_id": f"{subject}_{code}",
        "path": rel,
        "emotion": "",
        "subject_id": subject,
        **known,
        "source_code": code,
        "source_mouth": "",
    }


def _assumed_note(source: str, assumed: list[str], rows: list[dict[str, str]], table: dict[str, Code]) -> str:
    count = sum(r["source_code"] in assumed for r in rows)
    meaning = ", ".join(f"{c} {table[c].emotion} ({table[c].mouth})" for c in assumed)
    return (
        f"{source}: {count} image(s) carry code(s) whose meaning is assumed, not confirmed: {meaning}; "
        "if the set's read-me says otherwise, declare them in a code file and pass ?codes=FILE "
        "(codes declared there count as confirmed)"
    )
