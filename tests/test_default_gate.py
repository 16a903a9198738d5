"""The product's promise on the embedded offline default: `pytest fairness_tests` shows a FAIL, a
PASS and an INCONCLUSIVE, each for the reason the README gives (about half a minute, cold)."""

import json
from pathlib import Path

import pytest

from fer_fairness.config import load_thresholds
from tests.criteria.coherence import assert_coherent

REPO = Path(__file__).resolve().parents[1]


def test_default_run_fails_skin_tone_passes_gender_spread_and_leaves_small_groups_open(pytester, tmp_path):
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

    records = json.loads((reports / "fairness.json").read_text())["tests"]
    tests = {t["criterion"] + "|" + t["test_id"]: t for t in records}
    dark = tests["accuracy_gap|hog-probe|synthetic|skin_tone=dark~light"]
    assert dark["verdict"] == "FAIL" and dark["estimate"] < -0.10 and dark["outcome"] == "failed"
    # Gender has no mechanism: its spread is shown within the 10-point band (PASS); its 5-point
    # accuracy gap holds "no difference" but 140 people per gender (21 images each, clustered) do not
    # show it inside +-0.05 at the corrected level, so it stays open and says what would settle it.
    gender = tests["association|hog-probe|synthetic|gender"]
    assert gender["verdict"] == "PASS" and gender["rule"] == "inside" and gender["outcome"] == "passed"
    gap = tests["accuracy_gap|hog-probe|synthetic|gender=male~female"]
    assert gap["verdict"] != "FAIL" and gap["ci_low"] < 0 < gap["ci_high"]
    assert "clustered by subject" in gap["inference"]
    assert any(t["verdict"] == "INCONCLUSIVE" and t["outcome"] == "skipped" for t in tests.values())
    assert (reports / "junit.xml").is_file() and (reports / "fairness.html").is_file()
    # No verdict in the whole run contradicts the interval, band and rule printed beside it.
    target_power = load_thresholds(REPO / "thresholds.toml").power
    for record in records:
        assert_coherent(record, target_power=target_power)
