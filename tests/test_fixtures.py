"""The README's vendor-acceptance recipe, run on the files in fixtures/ exactly as a newcomer would."""

import json
from pathlib import Path

import pandas as pd
import pytest

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
