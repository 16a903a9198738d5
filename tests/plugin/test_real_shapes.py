"""Real data shapes through the whole plugin: a group without an emotion, and the study's views.

Each run uses the shipped fairness_tests and thresholds.toml on a tree shaped like the real set and a
seeded random predictions file. Whatever the counts, the run must end in a decision (exit 0 or 1,
never an internal or usage error), write all three reports, and every JSON record must be coherent.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_fairness.config import load_thresholds
from tests.criteria.coherence import assert_coherent
from tests.datasets.trees import cfd_path, load, write_images
from tests.studies import write_study

REPO = Path(__file__).resolve().parents[2]
SHIPPED = load_thresholds(REPO / "thresholds.toml")


def _run(pytester: pytest.Pytester, dataset: str, predictions: Path) -> list[dict]:
    """The shipped suite and policy on one dataset; returns fairness.json's records, checked."""
    shutil.copytree(REPO / "fairness_tests", pytester.path / "fairness_tests")
    shutil.copy(REPO / "thresholds.toml", pytester.path / "thresholds.toml")
    reports = pytester.path / "reports"
    result = pytester.runpytest(
        "fairness_tests",
        f"--fairness-dataset={dataset}",
        f"--fairness-model=predictions:{predictions}?name=random",
        f"--fairness-cache-dir={pytester.path / 'cache'}",
        f"--fairness-report-dir={reports}",
        "-p",
        "no:cacheprovider",
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output[-3000:]
    assert "Traceback" not in output
    records = json.loads((reports / "fairness.json").read_text())["tests"]
    assert records
    for record in records:
        assert_coherent(record, target_power=SHIPPED.power)
    cases = {c.get("name") for c in ET.parse(reports / "junit.xml").getroot().iter("testcase")}
    assert all(any(r["test_id"] in name for name in cases) for r in records)  # every record has its test case
    assert "<html" in (reports / "fairness.html").read_text()
    return records


def _random_outcome(rng: np.random.Generator, true: str, labels: list[str], right: float) -> str:
    """Right with probability ``right``, else any label; now and then a refusal (seeded: the same file every run)."""
    draw = rng.random()
    if draw < 0.03:
        return "refused"
    return true if draw < right else str(rng.choice(labels))


# How often the model is right, by race: from a clear floor failure to a clear pass, so that the runs
# hold verdicts decided by every rule, not only intervals that straddle the band.
RIGHT = {"Asian": 0.5, "Black": 0.25, "Hispanic": 0.7, "Latino": 0.7, "White": 0.97}


def _predictions(root: Path, spec: str) -> Path:
    samples = load(spec).samples
    labels = sorted(set(samples["emotion"]))
    rng = np.random.default_rng(7)
    outcomes = [
        _random_outcome(rng, true, labels, RIGHT[race])
        for true, race in zip(samples["emotion"], samples["race"], strict=True)
    ]
    path = root / "predictions.csv"
    pd.DataFrame({"sample_id": samples["sample_id"], "prediction": outcomes}).to_csv(path, index=False)
    return path


def _lacking(records: list[dict], *, emotion: str, group: str) -> list[dict]:
    """The per-emotion records about ``emotion`` faces that compare ``group`` (as group or as reference).

    over_attribution[emotion] and score_shift[emotion] are about the other faces read (or scored) as
    ``emotion``, which the group has: not among them.
    """
    return [
        r
        for r in records
        if r["detail"] is not None
        and r["criterion"] not in ("over_attribution", "score_shift")
        and (r["detail"] == emotion or r["detail"].startswith(f"{emotion}->"))
        and group in (r["group"], r["reference"])
    ]


def test_two_groups_of_120_faces_one_without_neutral(pytester):
    """The issue's minimal case: group A has anger, fear, happiness and neutral; group B no neutral face."""
    rng = np.random.default_rng(3)
    labels = ["anger", "fear", "happiness", "neutral"]
    faces = [("A", e) for e in labels for _ in range(30)] + [("B", e) for e in labels[:3] for _ in range(40)]
    cells = [({"group": g}, e, _random_outcome(rng, e, labels, {"A": 0.9, "B": 0.3}[g]), 1) for g, e in faces]
    manifest, predictions = write_study(pytester.path, cells)
    records = _run(pytester, f"manifest:{manifest}?name=two-groups", predictions)
    about_neutral = _lacking(records, emotion="neutral", group="B")
    assert about_neutral, "the neutral recall and confusions of B vs A must be reported, not dropped"
    for record in about_neutral:
        assert record["verdict"] == "INCONCLUSIVE" and "no neutral faces" in record["reason"], record["reason"]


# -- the study's views on look-alike trees ----------------------------------------------------------

CFD_CODES = ["N", "A", "F", "HC", "HO"]
RADIATE_CODES = ["AC", "DC", "FC", "HC", "NC", "SC", "PO"]  # one per emotion of radiate-7
FACEPLACE_RACES = ["asian", "african-american", "caucasian", "hispanic"]
FACEPLACE_WORDS = ["happy", "Angry", "sad", "SU", "neutral", "disgust", "afraid"]


def _cfd(root: Path, *, skip: tuple[str, str] | None = None) -> Path:
    """6 models per race x gender, 5 photos each: 30 faces per cell, 60 per race (the main set only)."""
    names = [
        f"CFD-{race}{gender}-{model:03d}-{photo:03d}-{code}.jpg"
        for race in "ABLW"
        for gender in "FM"
        for model in range(1, 7)
        for photo, code in enumerate(CFD_CODES, start=1)
        if (race, code) != skip
    ]
    names += ["CFD-MF-300-001-N.jpg", "CFD-IM-600-002-N.jpg"]  # sets outside the view
    return write_images(root, [cfd_path(n) for n in names])


def _radiate(root: Path, *, skip: tuple[str, str] | None = None) -> Path:
    """5 models per race x gender, one image per emotion (and a calm one the view drops)."""
    names = [
        f"{race}{gender}{model:02d}_{code}.jpg"
        for race in "ABHW"
        for gender in "FM"
        for model in range(1, 6)
        for code in [*RADIATE_CODES, "CC"]
        if (race, code) != skip
    ]
    return write_images(root, names)


def _faceplace(root: Path, *, skip: tuple[str, str] | None = None) -> Path:
    """6 people per ethnicity folder, one image per expression word, and a multiracial folder the view drops."""
    paths = [
        f"{folder}/{folder[:2]}_{person}_{word}.jpg"
        for folder in [*FACEPLACE_RACES, "multiracial"]
        for person in range(1, 7)
        for word in FACEPLACE_WORDS
        if (folder, word) != skip
    ]
    return write_images(root, paths)


@pytest.mark.parametrize(
    ("view", "build", "skip", "lacking"),
    [
        ("cfd-4", _cfd, None, None),
        ("cfd-4", _cfd, ("B", "N"), ("neutral", "Black")),  # no neutral Black face
        ("radiate-7", _radiate, None, None),
        ("radiate-7", _radiate, ("A", "DC"), ("disgust", "Asian")),  # no disgusted Asian face
        ("faceplace-7", _faceplace, None, None),
        ("faceplace-7", _faceplace, ("caucasian", "sad"), ("sadness", "White")),  # the reference lacks sadness
    ],
    ids=[
        "cfd-4",
        "cfd-4-no-black-neutral",
        "radiate-7",
        "radiate-7-no-asian-disgust",
        "faceplace-7",
        "faceplace-7-no-white-sad",
    ],
)
def test_a_study_view_with_random_predictions_ends_in_a_decision(pytester, view, build, skip, lacking):
    spec = f"{view}:{build(pytester.path / 'data', skip=skip)}"
    records = _run(pytester, spec, _predictions(pytester.path, spec))
    assert {r["dataset"] for r in records} == {view}
    if lacking is not None:
        emotion, group = lacking
        about = [r for r in _lacking(records, emotion=emotion, group=group) if r["attribute"] == "race"]
        assert about, f"the {emotion} records of {group} must be reported, not dropped"
        for record in about:
            assert record["verdict"] == "INCONCLUSIVE" and f"no {emotion} faces" in record["reason"], record["reason"]
