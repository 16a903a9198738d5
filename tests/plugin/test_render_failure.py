"""A bug while drawing the HTML page never ends the run in a traceback: the reports are written as a
pair or not at all, so the previous run's pair stays untouched, and one line names what failed and
says where the JSON is (not written; the old pair kept)."""

import pytest

from tests.plugin.test_plugin import _project

BROKEN_CHARTS = """
import fer_fairness.report.charts as charts

def _broken(**kwargs):
    raise RuntimeError("chart backend exploded")

charts.all_charts = _broken
"""

CELLS = [
    ({"race": "Black"}, "anger", "anger", 40),
    ({"race": "Black"}, "anger", "disgust", 20),
    ({"race": "White"}, "anger", "anger", 50),
    ({"race": "White"}, "anger", "disgust", 10),
    ({"race": "Black"}, "disgust", "disgust", 30),
    ({"race": "White"}, "disgust", "disgust", 30),
]


def test_a_chart_that_raises_ends_in_one_line_and_keeps_the_previous_pair(pytester):
    args = _project(pytester, CELLS)
    reports = pytester.path / "reports"
    good = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    before = {name: (reports / name).read_bytes() for name in ("fairness.json", "fairness.html")}

    # A different policy: had the second run's JSON been written, its bytes would differ.
    thresholds = pytester.path / "thresholds.toml"
    thresholds.write_text(thresholds.read_text().replace("[settings]\n", "[settings]\nalpha = 0.01\n"))
    pytester.makeconftest(BROKEN_CHARTS)
    broken = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    output = broken.stdout.str() + broken.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert broken.ret == good.ret  # the verdicts decide the exit code, as without the bug
    assert pytest.ExitCode(good.ret) in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    broken.stdout.fnmatch_lines(
        [
            "fer-fairness: the HTML report could not be drawn (RuntimeError: chart backend exploded); fairness.json "
            f"was not written either (the two are written as a pair), so {reports} keeps the previous run's "
            "reports; this run's verdicts are in the summary above",
            "fer-fairness decision: *",
        ]
    )
    assert "report: " not in broken.stdout.str()  # no path is claimed for a file that was not written
    assert {name: (reports / name).read_bytes() for name in before} == before
