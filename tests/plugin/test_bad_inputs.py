"""The catalogue of bad inputs: each ends in one clear line (exit 4) or an explicit, counted exclusion.

Table-driven: (what a careless user does, expected exit code, expected fragment of the one line, or
the exclusions expected in the report). Every case starts from the same small, valid project.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from fer_fairness.config import CRITERIA
from tests.studies import write_study

SUITE = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)
"""


@dataclass
class Project:
    root: Path
    manifest: Path
    predictions: Path
    options: dict[str, str] = field(default_factory=dict)  # spec options of the dataset
    extra: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.read_csv(self.manifest, dtype=str, keep_default_na=False)

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_csv(self.manifest, index=False)

    def args(self) -> list[str]:
        query = "&".join(f"{k}={v}" for k, v in {"name": "toy", **self.options}.items())
        return [
            "fairness_tests",
            f"--fairness-dataset=manifest:{self.manifest}?{query}",
            f"--fairness-model=predictions:{self.predictions}?name=m",
            *self.extra,
        ]


def _set(column: str, row: int, value: str) -> Callable[[Project], None]:
    def mutate(p: Project) -> None:
        frame = p.table()
        frame.loc[row, column] = value
        p.write(frame)

    return mutate


def _option(**options: str) -> Callable[[Project], None]:
    return lambda p: p.options.update(options)


def _args(*extra: str) -> Callable[[Project], None]:
    return lambda p: p.extra.extend(extra)


def _policy(text: str) -> Callable[[Project], None]:
    return lambda p: (p.root / "thresholds.toml").write_text(text)


def _truncate_first_image(p: Project) -> None:
    image = p.root / p.table().loc[0, "path"]
    image.write_bytes(image.read_bytes()[:20])


def _duplicate_race_column(p: Project) -> None:
    lines = p.manifest.read_text().splitlines()
    race = lines[0].split(",").index("race")
    p.manifest.write_text("\n".join(f"{line},{line.split(',')[race]}" for line in lines) + "\n")


def _predictions(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Project], None]:
    def mutate(p: Project) -> None:
        frame = pd.read_csv(p.predictions, dtype=str, keep_default_na=False)
        edit(frame).to_csv(p.predictions, index=False)

    return mutate


def _all_errors(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(prediction="error")


def _file_named(name: str) -> Callable[[Project], None]:
    return lambda p: (p.root / name).write_text("not a folder")


def _mistyped_marker(p: Project) -> None:
    (p.root / "fairness_tests" / "test_more.py").write_text(SUITE.replace('"accuracy_gap"', '"accuracy_gapp"'))


USAGE = pytest.ExitCode.USAGE_ERROR
CASES = [
    ("negative seed", _args("--fairness-seed=-3"), USAGE, "must be a non-negative integer, got '-3'"),
    ("infinite timeout", _args("--fairness-timeout=inf"), USAGE, "must be a positive number of seconds, got 'inf'"),
    ("NaN timeout", _args("--fairness-timeout=nan"), USAGE, "got 'nan'"),
    ("zero concurrency", _args("--fairness-concurrency=0"), USAGE, "must be an integer from 1 to 256, got '0'"),
    ("huge concurrency", _args("--fairness-concurrency=4000"), USAGE, "must be an integer from 1 to 256, got '4000'"),
    ("typo in a dataset kind", _args("--fairness-dataset=manifset:x.csv"), USAGE, "did you mean 'manifest'?"),
    ("typo in a model kind", _args("--fairness-model=predictons:x.csv"), USAGE, "did you mean 'predictions'?"),
    ("missing thresholds file", _args("--fairness-thresholds=nope.toml"), USAGE, "cannot read the thresholds file"),
    ("unknown policy key", _policy("[settings]\nalfa = 0.05\n"), USAGE, "'settings.alfa' must be one of the known"),
    ("policy value of a wrong type", _policy('[settings]\nalpha = "x"\n'), USAGE, "'settings.alpha' must be a number"),
    ("policy value out of range", _policy("[settings]\nalpha = 0.9\n"), USAGE, "got 0.9"),
    (
        "every criterion disabled",
        _policy("".join(f"[criteria.{c}]\nenabled = false\n" for c in CRITERIA)),
        USAGE,
        "every criterion is disabled",
    ),
    ("report folder is a file", _file_named("reports"), USAGE, "is a file"),
    ("reference names no group", _policy('[reference]\nrace = "Martian"\n'), USAGE, "is not a group"),
    (
        "intersection reference in like-with-like mode",
        _policy('[groups]\nintersections = [["race", "gender"]]\n[reference]\n"race+gender" = "White+female"\n'),
        USAGE,
        "applies only with 'groups.intersection_comparisons'",
    ),
    (
        "confusion pair the dataset lacks",
        _policy('[criteria.confusion_ratio]\npairs = ["contempt->anger"]\n'),
        USAGE,
        "names contempt->anger",
    ),
    ("NA written by R", _set("race", 0, "NA"), USAGE, "attribute 'race' has no value for 1 sample(s)"),
    ("blank attribute", _set("race", 3, "  "), USAGE, "attribute 'race' has no value for 1 sample(s)"),
    ("one group written two ways", _set("gender", 0, "Female"), USAGE, "?map="),
    ("a '+' that makes two cells one name", _set("race", 0, "Black+female"), None, None),
    ("repeated spec key", _option(name="a&name=b"), USAGE, "option 'name' is given twice"),
    ("empty spec option", _option(name=""), USAGE, "option 'name' has no value"),
    ("attribute named twice", _option(attributes="race,race"), USAGE, "names race more than once"),
    ("duplicated column header", _duplicate_race_column, USAGE, "'race' appear more than once in the header"),
    ("path escaping the dataset", _set("path", 0, "../../etc/passwd"), USAGE, "leave the dataset folder"),
    ("missing image file", _set("path", 0, "images/nope.png"), USAGE, "not found under"),
    ("truncated image", _truncate_first_image, USAGE, "cannot be decoded"),
    ("unknown emotion label", _set("emotion", 0, "smug"), USAGE, "'smug' are not in the vocabulary"),
    ("a sample with no prediction", _predictions(lambda f: f.iloc[1:]), USAGE, "has no prediction for 1 of"),
    (
        "a label outside the vocabulary",
        _predictions(lambda f: f.assign(prediction="smug")),
        USAGE,
        "are neither emotions",
    ),
    ("a total outage in the predictions", _predictions(_all_errors), USAGE, "not evaluated"),
    ("a mistyped fairness marker", _mistyped_marker, USAGE, "did you mean 'accuracy_gap'?"),
]


@pytest.fixture
def project(pytester) -> Project:
    cells = [
        ({"race": race, "gender": gender}, emotion, emotion if k % 4 else "disgust", 1)
        for race in ("Black", "White")
        for gender in ("female", "male")
        for emotion in ("anger", "happiness")
        for k in range(20)
    ]
    manifest, predictions = write_study(pytester.path, cells)
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_suite.py").write_text(SUITE)
    return Project(root=pytester.path, manifest=manifest, predictions=predictions)


@pytest.mark.parametrize(("mutate", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_clear_line(pytester, project, mutate, code, fragment):
    mutate(project)
    result = pytester.runpytest(*project.args(), "-p", "no:cacheprovider")
    output = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in output and "INTERNALERROR" not in output
    if code is None:  # the case is handled: the run goes on and decides
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        return
    assert result.ret == code, output[-2000:]
    assert fragment in output
    assert not (project.root / "reports" / "fairness.json").exists()  # a stopped run writes no verdicts


EXCLUDED = [
    ("NA with on_error=exclude", _set("race", 0, "NA"), "missing race"),
    ("truncated image with on_error=exclude", _truncate_first_image, "unreadable image"),
]


@pytest.mark.parametrize(("mutate", "reason"), [c[1:] for c in EXCLUDED], ids=[c[0] for c in EXCLUDED])
def test_an_opted_in_exclusion_is_counted_in_the_report(pytester, project, mutate, reason):
    mutate(project)
    project.options["on_error"] = "exclude"
    result = pytester.runpytest(*project.args(), "-p", "no:cacheprovider")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    document = json.loads((project.root / "reports" / "fairness.json").read_text())
    [exclusion] = document["run"]["datasets"]["toy"]["exclusions"]
    assert (exclusion["reason"], exclusion["count"]) == (reason, 1)
    assert document["run"]["datasets"]["toy"]["images"] == 159
