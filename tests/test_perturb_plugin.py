"""robustness_gap through the plugin: a policy's sweep becomes tests; a bad sweep is one line, exit 4.

The planting: one group's photos are barely bright enough for a model that calls bright faces happy,
so darkening them (brightness:0.8) costs that group every answer and the other group none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

CONFTEST = """
import numpy as np
import fer_fairness

def bright_is_happy(images):
    return ["happiness" if np.asarray(image).mean() > 128 else "anger" for image in images]

def pytest_fairness_models(config):
    return {"mine": fer_fairness.BatchModel("mine", bright_is_happy, version="1", image_mode="L")}
"""


def _project(pytester, policy: str) -> None:
    (pytester.path / "images").mkdir()
    rows = []
    for race, grey in (("Black", 140), ("White", 250)):  # darkened by 0.8: 112 (now "anger") and 200
        for i in range(40):
            sample = f"{race}{i:02d}"
            # a pixel that differs per face keeps the images distinct files, as photos are
            pixels = np.full((4, 4), grey, dtype=np.uint8)
            pixels[0, 0] = grey - i % 5
            Image.fromarray(pixels, mode="L").save(pytester.path / "images" / f"{sample}.png")
            rows.append({"sample_id": sample, "path": f"images/{sample}.png", "emotion": "happiness",
                         "subject_id": sample, "race": race})  # fmt: skip
    pd.DataFrame(rows).to_csv(pytester.path / "faces.csv", index=False)
    pytester.makeconftest(CONFTEST)
    pytester.mkdir("fairness_tests")
    suite = (REPO / "fairness_tests" / "test_robustness.py").read_text()
    (pytester.path / "fairness_tests" / "test_robustness.py").write_text(suite)
    (pytester.path / "thresholds.toml").write_text(policy)


def _run(pytester):
    return pytester.runpytest_subprocess(
        "fairness_tests",
        f"--fairness-dataset=manifest:{pytester.path / 'faces.csv'}?name=faces",
        "--fairness-model=mine",
        f"--fairness-thresholds={pytester.path / 'thresholds.toml'}",
        f"--fairness-cache-dir={pytester.path / 'cache'}",
        f"--fairness-report-dir={pytester.path / 'reports'}",
        "-p",
        "no:cacheprovider",
    )


def test_a_darkening_that_costs_one_group_fails_its_test(pytester):
    _project(pytester, '[reference]\nrace = "White"\n[criteria.robustness_gap]\nperturbations = ["brightness:0.8"]\n')
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAILED *::test_robustness_gap?mine|faces|race=Black~White|brightness:0.8?*"])
    records = json.loads((pytester.path / "reports" / "fairness.json").read_text())["tests"]
    (record,) = [r for r in records if r["criterion"] == "robustness_gap"]
    assert record["verdict"] == "FAIL" and record["estimate"] == pytest.approx(1.0)
    assert record["rates"]["Black (brightness:0.8)"] == 0 and record["rates"]["White (brightness:0.8)"] == 1
    assert "brightness:0.8 costs Black 1.00 accuracy and White 0.00: 1.00 more [" in record["reason"]


@pytest.mark.parametrize("entry", ['"sharpen:2"', '"jpeg:0"', '"blur:-1"', '"blur:1.5", "blur:1.50"'])
def test_a_bad_sweep_stops_the_run_with_one_line(pytester, entry):
    _project(pytester, f"[criteria.robustness_gap]\nperturbations = [{entry}]\n")
    result = _run(pytester)
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output[-2000:]
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "'criteria.robustness_gap.perturbations' must be" in line]
    assert len(lines) == 1 and not (pytester.path / "cache" / "perturbed").exists()


def test_without_a_sweep_the_test_is_skipped_and_no_image_is_perturbed(pytester):
    _project(pytester, "")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert "fer-fairness: mine on faces" not in result.stdout.str()  # no test needs the model: it is never asked
    assert result.parseoutcomes().get("skipped") == 1
    assert not (pytester.path / "cache" / "perturbed").exists()
