"""Score columns of a predictions file reach the score criteria, and dataset bias reaches the run facts."""

import json

import numpy as np
import pandas as pd

from tests.studies import write_study

FAIRNESS_TESTS = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("score_shift")
def test_score_shift(fairness_record):
    gate(fairness_record)

@pytest.mark.fairness("calibration_gap")
def test_calibration_gap(fairness_record):
    gate(fairness_record)
"""

POLICY = """
[groups]
intersections = "none"
"""


def _project(pytester, *, scored: bool) -> list[str]:
    # Black faces are mostly anger, White faces mostly disgust: a dataset bias before any model.
    cells = [
        ({"race": "Black"}, "anger", "anger", 200),
        ({"race": "Black"}, "disgust", "disgust", 50),
        ({"race": "White"}, "anger", "anger", 50),
        ({"race": "White"}, "disgust", "disgust", 200),
    ]
    manifest, predictions = write_study(pytester.path, cells)
    if scored:  # the anger score on disgust faces: 0.6 for Black faces, 0.2 for White ones
        table = pd.read_csv(predictions)
        rows = pd.read_csv(manifest).set_index("sample_id").loc[table["sample_id"]]
        rng = np.random.default_rng(0)
        planted = np.where(rows["race"].to_numpy() == "Black", 0.6, 0.2)
        anger = np.where(rows["emotion"].to_numpy() == "anger", 0.9, planted) + rng.uniform(-0.05, 0.05, len(table))
        table.assign(score_anger=anger, score_disgust=1 - anger).to_csv(predictions, index=False)
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_scores.py").write_text(FAIRNESS_TESTS)
    (pytester.path / "thresholds.toml").write_text(POLICY)
    return [
        "fairness_tests",
        f"--fairness-dataset=manifest:{manifest}?name=toy",
        f"--fairness-model=predictions:{predictions}?name=vendor-x",
    ]


def _records(pytester) -> tuple[dict, dict]:
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    return {f"{t['criterion']}|{t['detail']}": t for t in document["tests"]}, document["run"]


def test_score_columns_are_judged_and_the_dataset_bias_is_reported(pytester):
    result = pytester.runpytest(*_project(pytester, scored=True), "-rfs")
    result.stdout.fnmatch_lines(["*warning: dataset 'toy': race and true emotion are associated*"])
    tests, run = _records(pytester)
    shift = tests["score_shift|anger"]
    assert shift["verdict"] == "FAIL" and abs(shift["estimate"]) > 0.35  # White (the reference on a tie) - Black
    assert tests["calibration_gap|None"]["rule"] != "undefined"  # measured from the scores
    race = run["datasets"]["toy"]["dataset_bias"]["race"]
    assert race["strong"] and race["shares"] == {"Black": 0.5, "White": 0.5}


def test_a_model_without_scores_leaves_the_score_criteria_inconclusive(pytester):
    result = pytester.runpytest(*_project(pytester, scored=False), "-rfs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*INCONCLUSIVE*model vendor-x gives no per-label scores*"])
    tests, _ = _records(pytester)
    assert {t["verdict"] for t in tests.values()} == {"INCONCLUSIVE"}
