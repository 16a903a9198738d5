"""The product's promise on the embedded offline default: `pytest fairness_tests` shows a FAIL, a
PASS and an INCONCLUSIVE, each for the reason the README gives (about half a minute, cold)."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_default_run_fails_skin_tone_passes_gender_and_leaves_small_groups_open(pytester, tmp_path):
    reports = tmp_path / "reports"
    result = pytester.runpytest_subprocess(
        str(REPO / "fairness_tests"),
        f"--rootdir={REPO}",
        f"--fairness-cache-dir={tmp_path / 'cache'}",
        f"--fairness-report-dir={reports}",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the gate closes: the default has a real disparity
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1 and outcomes["passed"] >= 1 and outcomes["skipped"] >= 1

    tests = {
        t["criterion"] + "|" + t["test_id"]: t for t in json.loads((reports / "fairness.json").read_text())["tests"]
    }
    dark = tests["accuracy_gap|hog-probe|synthetic|skin_tone=dark~light"]
    assert dark["verdict"] == "FAIL" and dark["estimate"] < -0.10 and dark["outcome"] == "failed"
    gender = tests["accuracy_gap|hog-probe|synthetic|gender=male~female"]
    assert gender["verdict"] == "PASS" and gender["outcome"] == "passed"
    assert any(t["verdict"] == "INCONCLUSIVE" and t["outcome"] == "skipped" for t in tests.values())
    assert (reports / "junit.xml").is_file() and (reports / "fairness.html").is_file()
