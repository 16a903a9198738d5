"""Chicago Face Database 3.0 and 2.0.3, with CFD-MR and CFD-INDIA: ``cfd:ROOT[?norming=FILE|none&attributes=...]``.

Images are named ``CFD-{race}{gender}-{model}-{photo}[-{rep}]-{expr}.jpg`` (e.g. ``CFD-AF-200-228-N.jpg``)
anywhere under ROOT: race A, B, L, W (the main set), M (CFD-MR) or I (CFD-INDIA); gender F, M;
expression N, A, F, HC, HO, both happy codes read as happiness with the mouth kept in ``source_mouth``.
Model and photo numbers are read as numbers, so the known unpadded names (``CFD-WM-40-022-N.jpg``) load
as the same model as padded ones; ids are written padded.

Race and gender come from the file name. The optional norming workbook adds the models' self-reports
(``race_self``, ``ethnicity_self``, ``gender_self``), compared only when named in ``?attributes=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath

import pandas as pd

from fer_fairness.datasets._cfd_norming import SELF_REPORTS, find_workbook, read_self_reports
from fer_fairness.datasets._hygiene import (
    COMMON_OPTIONS,
    Checker,
    dataset_root,
    excluding,
    finish,
    no_images,
)
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError
from fer_fairness.specs import Spec, check_options

OPTIONS = (*COMMON_OPTIONS, "norming", "attributes")
USAGE = "cfd:/data/CFD"
NAMING = "CFD-{race}{gender}-{model}-{photo}[-{rep}]-{expr}.jpg, e.g. CFD-AF-200-228-N.jpg"
RACES = {"A": "Asian", "B": "Black", "L": "Latino", "W": "White", "M": "Multiracial", "I": "Indian"}
SETS = {"A": "CFD", "B": "CFD", "L": "CFD", "W": "CFD", "M": "CFD-MR", "I": "CFD-INDIA"}
GENDERS = {"F": "female", "M": "male"}
# Expression code -> (emotion, mouth). Both happy codes are happiness; the mouth is a fact, not a label.
EXPRESSIONS = {
    "N": ("neutral", ""),
    "A": ("anger", ""),
    "F": ("fear", ""),
    "HC": ("happiness", "closed"),
    "HO": ("happiness", "open"),
}
DEFAULT_ATTRIBUTES = ("race", "gender")
ALL_ATTRIBUTES = (*DEFAULT_ATTRIBUTES, *SELF_REPORTS.values())

_NAME = re.compile(
    r"CFD-(?P<race>[A-Z])(?P<gender>[A-Z])-(?P<model>\d{1,4})-(?P<photo>\d{1,4})"
    r"(?:-(?P<rep>\d{1,3}))?-(?P<expr>[A-Z]+)",
    re.IGNORECASE,
)


def load_cfd(spec: Spec, **_context) -> Dataset:
    """Registry entry for ``cfd:ROOT``: every image of every CFD set found under ROOT."""
    return read(spec, default_name="cfd")


def read(spec: Spec, *, default_name: str, keep: Callable[[dict[str, str]], bool] = lambda row: True) -> Dataset:
    """Load the tree; ``keep`` selects the rows of a study view before any image is checked."""
    check_options(spec, OPTIONS, what="dataset")
    root = dataset_root(spec, usage=USAGE)
    source = f"{spec.kind} {root}"
    attributes = _attributes(spec)
    checker = Checker(
        source=source,
        root=root,
        attributes=attributes,
        exclude=excluding(spec),
        todo={
            "naming": f"name them {NAMING} or move them out of the folder",
            "label": f"the CFD expression codes are {', '.join(EXPRESSIONS)}",
            "no_value": "add the models to the norming workbook or leave the self-reports out of ?attributes=",
        },
    )
    files = checker.image_files()
    if not files:
        raise no_images(source, root, NAMING)
    workbook = find_workbook(root, spec.option("norming"))
    wanted = [a for a in attributes if a in SELF_REPORTS.values()]
    if wanted and workbook is None:
        raise ConfigError(
            f"dataset '{spec.text}': ?attributes= names {', '.join(wanted)}, which come from the norming "
            f"workbook, but none was found in {root}; pass ?norming=FILE"
        )
    reports = read_self_reports(workbook, races=RACES, genders=GENDERS) if workbook else {}
    rows = [row for rel in files if (row := _parse(rel, checker, reports)) is not None and keep(row)]

    def describe(samples: pd.DataFrame) -> str:
        sets = ", ".join(sorted(samples["source_set"].unique()))
        norming = f"; self-reports from {workbook.name}" if workbook else ""
        return (
            f"Chicago Face Database ({sets}) at {root}: {len(samples)} images of "
            f"{samples['subject_id'].nunique()} models; race and gender from the file names{norming}; "
            "happy open and closed mouth both read as happiness (mouth in source_mouth)"
        )

    return finish(rows, checker=checker, name=spec.option("name") or default_name, describe=describe)


def _attributes(spec: Spec) -> tuple[str, ...]:
    names = spec.names("attributes", what="dataset")  # an empty list or a repeated name is an error there
    if names is None:
        return DEFAULT_ATTRIBUTES
    if any(a not in ALL_ATTRIBUTES for a in names):
        raise ConfigError(
            f"dataset '{spec.text}': ?attributes= takes a comma list of {', '.join(ALL_ATTRIBUTES)}; "
            f"got '{spec.option('attributes')}'"
        )
    return names


def _parse(rel: str, checker: Checker, reports: dict) -> dict[str, str] | None:
    match = _NAME.fullmatch(PurePosixPath(rel).stem)
    if match is None:
        checker.flag("naming", rel, f"expected {NAMING}")
        return None
    race, gender, expr = match["race"].upper(), match["gender"].upper(), match["expr"].upper()
    model, photo = int(match["model"]), int(match["photo"])
    self_reports = reports.get((race, gender, model), {})
    known = {"race": RACES.get(race), "gender": GENDERS.get(gender), **self_reports}
    subject = f"{race}{gender}-{model:03d}"
    rep = f"-{int(match['rep'])}" if match["rep"] else ""
    sample_id = f"CFD-{subject}-{photo:03d}{rep}-{expr}"
    if race not in RACES or gender not in GENDERS:
        message = f"race must be one of {', '.join(RACES)}, gender F or M"
        checker.flag("naming", rel, message, sample_id=sample_id, **known)
        return None
    emotion, mouth = EXPRESSIONS.get(expr, (f"code {expr}", ""))  # an unknown code fails the label check
    return {
        "sample_id": sample_id,
        "path": rel,
        "emotion": emotion,
        "subject_id": subject,
        **known,
        **{column: self_reports.get(column, "") for column in SELF_REPORTS.values()},
        "source_set": SETS[race],
        "source_code": expr,
        "source_mouth": mouth,
        "source_photo": f"{photo:03d}{rep}",
    }
