"""Release gating: a candidate's gaps against a baseline run's, paired on shared images or not."""

import gzip
import html
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "fixtures" / "vendor-acceptance"
POLICY = '[groups]\nintersections = "none"\n[reference]\nrace = "White"\n'


def _run(pytester, predictions: Path, reports: str, *extra: str):
    (pytester.path / "thresholds.toml").write_text(POLICY)
    return pytester.runpytest_subprocess(
        str(REPO / "fairness_tests"),
        f"--rootdir={pytester.path}",
        f"--fairness-thresholds={pytester.path / 'thresholds.toml'}",
        f"--fairness-dataset=manifest:{EXAMPLE / 'faces.csv'}?name=faces",
        f"--fairness-model=predictions:{predictions}?name=vendor",
        f"--fairness-cache-dir={pytester.path / 'cache'}",
        f"--fairness-report-dir={pytester.path / reports}",
        "-p",
        "no:cacheprovider",
        *extra,
    )


def _worse_for_black(pytester, faces: pd.DataFrame) -> Path:
    """v2: 40 Black faces that v1 read correctly are now read wrongly (same images, a bigger gap)."""
    v1 = pd.read_csv(EXAMPLE / "vendor_x.csv", dtype=str, keep_default_na=False)
    joined = v1.merge(faces, on="sample_id")
    right = joined[(joined["race"] == "Black") & (joined["prediction"] == joined["emotion"])]["sample_id"][:40]
    v2 = v1.copy()
    flip = v2["sample_id"].isin(set(right))
    v2.loc[flip, "prediction"] = v2.loc[flip, "prediction"].map(lambda e: "neutral" if e != "neutral" else "anger")
    path = pytester.path / "v2.csv"
    v2.to_csv(path, index=False)
    return path


def _records(pytester, reports: str) -> list[dict]:
    return json.loads((pytester.path / reports / "fairness.json").read_text())["tests"]


def _regression(records, detail="accuracy_gap", test="race=Black~White"):
    return next(r for r in records if r["criterion"] == "no_regression" and r["test_id"].endswith(f"{test}|{detail}"))


def test_a_grown_gap_on_the_same_images_fails_paired_and_the_numbers_are_the_files(pytester):
    faces = pd.read_csv(EXAMPLE / "faces.csv", dtype=str)
    first = _run(pytester, EXAMPLE / "vendor_x.csv", "v1")
    assert first.ret == pytest.ExitCode.TESTS_FAILED  # the vendor's own gap
    kept = pytester.path / "v1" / "fairness-outcomes.csv.gz"
    table = pd.read_csv(kept, dtype=str)
    assert set(table.columns) == {"model", "dataset", "sample_id", "image", "outcome"} and len(table) == len(faces)
    v2 = _worse_for_black(pytester, faces)
    result = _run(pytester, v2, "v2", f"--fairness-baseline={pytester.path / 'v1'}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = _regression(_records(pytester, "v2"))

    # The oracle: accuracy per race in each file, the change of the gap counted directly.
    def accuracy(path):
        joined = pd.read_csv(path, dtype=str, keep_default_na=False).merge(faces, on="sample_id")
        right = (joined["prediction"] == joined["emotion"]).groupby(joined["race"]).mean()
        return right["Black"] - right["White"]

    assert record["estimate"] == pytest.approx(accuracy(v2) - accuracy(EXAMPLE / "vendor_x.csv"))
    assert record["estimate"] == pytest.approx(-40 / 200)
    assert record["inference"].startswith("paired")
    # v1 showed Black behind (its interval below 0): a regression is falling further behind
    assert record["band_low"] == pytest.approx(-0.02) and record["band_high"] == "inf"
    assert record["verdict"] == "FAIL" and record["rule"] == "outside" and record["ci_high"] < -0.02
    # the unchanged non-answer gap does not fail
    assert _regression(_records(pytester, "v2"), "non_answer_gap")["verdict"] != "FAIL"
    assert _since_baseline(pytester, "v2")[record["test_id"]] == "regressed"


def test_a_shrinking_gap_never_fails_and_without_outcomes_the_comparison_is_independent(pytester):
    faces = pd.read_csv(EXAMPLE / "faces.csv", dtype=str)
    v2 = _worse_for_black(pytester, faces)
    _run(pytester, v2, "v1")  # the worse model is the baseline now: the candidate closes the gap
    (pytester.path / "v1" / "fairness-outcomes.csv.gz").unlink()
    document = json.loads((pytester.path / "v1" / "fairness.json").read_text())
    del document["run"]["outcomes"]
    (pytester.path / "v1" / "fairness.json").write_text(json.dumps(document))
    result = _run(
        pytester, EXAMPLE / "vendor_x.csv", "v2", f"--fairness-baseline={pytester.path / 'v1' / 'fairness.json'}"
    )
    record = _regression(_records(pytester, "v2"))
    assert record["estimate"] == pytest.approx(40 / 200)
    assert record["verdict"] != "FAIL"
    assert record["inference"].startswith("independent") and "not paired" in record["note"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # from the vendor's own gap, not from the regression test
    # the whole interval of the change lies on the side that closes the baseline's gap
    assert record["ci_low"] > 0 and _since_baseline(pytester, "v2")[record["test_id"]] == "improved"


def _since_baseline(pytester, reports: str) -> dict[str, str]:
    """The HTML's "Since the baseline" table as {test id: kind}."""
    page = (pytester.path / reports / "fairness.html").read_text()
    section = page.split('id="since-baseline"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"\w+\"><td>(\w+)</td>\s*<td><a href=\"#t-\w+\">([^<]+)</a>", section)
    return {html.unescape(test_id): kind for kind, test_id in rows}


def test_without_a_baseline_no_regression_is_skipped_with_its_reason(pytester):
    result = _run(pytester, EXAMPLE / "vendor_x.csv", "v1", "-rs", "-k", "regression")
    result.stdout.fnmatch_lines(["*compares with a baseline run; give one with --fairness-baseline PATH*"])


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: d.write_text('{"hello": 1}'), "*not a fer-fairness report*"),
        (
            lambda d: d.write_text(json.dumps({**json.loads(d.read_text()), "schema_version": "0.3"})),
            "*schema version 0.3, which this release*cannot read*",
        ),
        (lambda d: d.write_text("not json"), "*not a readable JSON file*"),
        (
            lambda d: (d.parent / "fairness-outcomes.csv.gz").write_bytes(gzip.compress(b"model,dataset\n")),
            "*does not match the report*belongs to another run*",
        ),
        (lambda d: shutil.rmtree(d.parent), "*no fairness.json there*"),
    ],
    ids=["foreign", "old-schema", "not-json", "stale-outcomes", "missing"],
)
def test_a_baseline_this_release_cannot_use_is_one_usage_line(pytester, spoil, message):
    _run(pytester, EXAMPLE / "vendor_x.csv", "v1")
    spoil(pytester.path / "v1" / "fairness.json")
    result = _run(pytester, EXAMPLE / "vendor_x.csv", "v2", f"--fairness-baseline={pytester.path / 'v1'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()
