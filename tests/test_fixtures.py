"""The README's vendor-acceptance recipe, run on the files in fixtures/ exactly as a newcomer would."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_fairness.config import load_thresholds
from tests.criteria.coherence import assert_coherent

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "fixtures" / "vendor-acceptance"


def test_the_vendor_acceptance_recipe_closes_the_gate_on_the_planted_gap(pytester, tmp_path):
    reports = tmp_path / "reports"
    result = pytester.runpytest_subprocess(
        str(REPO / "fairness_tests"),
        f"--rootdir={REPO}",
        f"--fairness-dataset=manifest:{EXAMPLE / 'faces.csv'}?name=faces",
        f"--fairness-model=predictions:{EXAMPLE / 'vendor_x.csv'}?name=vendor-x",
        f"--fairness-cache-dir={tmp_path / 'cache'}",
        f"--fairness-report-dir={reports}",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["fer-fairness decision: GATE CLOSED*"])

    # The oracle: each race's accuracy counted straight from the two files.
    joined = pd.read_csv(EXAMPLE / "faces.csv").merge(pd.read_csv(EXAMPLE / "vendor_x.csv"), on="sample_id")
    accuracy = (joined["prediction"] == joined["emotion"]).groupby(joined["race"]).mean()
    records = json.loads((reports / "fairness.json").read_text())["tests"]
    gap = next(r for r in records if r["criterion"] == "accuracy_gap" and r["test_id"].endswith("|race=Black~White"))
    assert gap["verdict"] == "FAIL" and gap["rule"] == "outside"
    assert gap["estimate"] == pytest.approx(accuracy["Black"] - accuracy["White"])
    assert "clustered by subject" in gap["inference"]  # two images per person
    target_power = load_thresholds(REPO / "thresholds.toml").power
    for record in records:
        assert_coherent(record, target_power=target_power)


OWN = REPO / "fixtures" / "own-model"


def test_the_own_model_example_gates_its_conftest_model_dataset_and_criterion(pytester, tmp_path):
    """fixtures/own-model run from its folder as the README says; its numbers counted by calling its model."""
    reports = tmp_path / "reports"
    pytester.chdir()
    result = pytester.runpytest_subprocess(
        str(OWN / "fairness_tests"),
        f"--rootdir={OWN}",
        "--fairness-model=toy-net",
        "--fairness-dataset=example-faces",
        f"--fairness-cache-dir={tmp_path / 'cache'}",
        f"--fairness-report-dir={reports}",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str() + result.stderr.str()
    records = json.loads((reports / "fairness.json").read_text())["tests"]
    assert {r["criterion"] for r in records} == {"accuracy_gap", "accuracy_floor", "happy_read_as_neutral"}

    # The oracle: the example's own model function on its images, argmax, labels read by hand.
    spec = importlib.util.spec_from_file_location("own_model_conftest", OWN / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    faces = pd.read_csv(EXAMPLE / "faces.csv")
    images = [Image.open(EXAMPLE / p) for p in faces["path"]]
    words = {
        "angry": "anger",
        "disgusted": "disgust",
        "fearful": "fear",
        "happy": "happiness",
        "neutral": "neutral",
        "sad": "sadness",
        "surprised": "surprise",
    }
    faces["answer"] = [words[conftest.LABELS[i]] for i in np.argmax(conftest.toy_net(images), axis=1)]
    happy = faces[faces["emotion"] == "happiness"]
    as_neutral = (happy["answer"] == "neutral").groupby(happy["race"]).mean()
    ratio = next(
        r for r in records if r["criterion"] == "happy_read_as_neutral" and r["test_id"].endswith("race=Black~White")
    )
    assert ratio["rates"] == {"Black": pytest.approx(as_neutral["Black"]), "White": pytest.approx(as_neutral["White"])}
    assert ratio["owner"] == "example team"
    accuracy = (faces["answer"] == faces["emotion"]).groupby(faces["race"]).mean()
    floor = next(r for r in records if r["test_id"] == "toy-net|example-faces|race=Black")
    assert floor["rates"]["Black"] == pytest.approx(accuracy["Black"])
