"""The plugin as a black box: pytest runs a fairness suite on a tiny study and we read what it says."""

import importlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from fer_fairness.criteria.catalogue import BUILTIN
from tests.studies import write_study

FAIRNESS_TESTS = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)

@pytest.mark.fairness("confusion_ratio")
def test_confusion_ratio(fairness_record):
    gate(fairness_record)
"""

ONLY_TWO = """
[settings]
min_group_size = 30
[groups]
intersections = "none"
[criteria.confusion_ratio]
pairs = ["anger->disgust"]
"""


@pytest.fixture
def study(pytester):
    """Black faces: accuracy 0.55; White: 0.85 (a clear gap); Asian: only 12 faces."""
    cells = [
        ({"race": "Black"}, "anger", "anger", 110),
        ({"race": "Black"}, "anger", "disgust", 90),
        ({"race": "White"}, "anger", "anger", 170),
        ({"race": "White"}, "anger", "disgust", 30),
        ({"race": "Asian"}, "anger", "anger", 10),
        ({"race": "Asian"}, "anger", "refused", 2),
        ({"race": "Black"}, "disgust", "disgust", 50),
        ({"race": "White"}, "disgust", "disgust", 60),
        ({"race": "Asian"}, "disgust", "disgust", 5),
    ]
    return _project(pytester, cells)


def _project(pytester, cells, *, dataset: str = "toy", model: str = "vendor-x") -> list[str]:
    """A fairness project of these counts (the ONLY_TWO policy); returns the arguments that run it."""
    manifest, predictions = write_study(pytester.path, cells)
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_fair.py").write_text(FAIRNESS_TESTS)
    (pytester.path / "thresholds.toml").write_text(ONLY_TWO)
    return [
        "fairness_tests",
        f"--fairness-dataset=manifest:{manifest}?name={dataset}",
        f"--fairness-model=predictions:{predictions}?name={model}",
    ]


def test_ids_verdicts_and_reports(pytester, study):
    result = pytester.runpytest(*study, "-rfs")
    result.assert_outcomes(failed=2, skipped=2)
    for line in (
        "*FAILED fairness_tests/test_fair.py::test_accuracy_gap[[]vendor-x|toy|race=Black~White[]]*",
        "*FAILED fairness_tests/test_fair.py::test_confusion_ratio[[]vendor-x|toy|race=Black~White|anger->disgust[]]*",
        "accuracy difference for race=Black vs White: FAIL*",
        "*SKIPPED*not tested: Asian (n=17) below min_group_size = 30*",
        "4 fairness tests: 0 PASS, 2 FAIL, 2 INCONCLUSIVE",
    ):
        result.stdout.fnmatch_lines([line])
    reports = pytester.path / "reports"
    document = json.loads((reports / "fairness.json").read_text())
    assert document["schema_version"] == "1.0"
    assert {t["test_id"] for t in document["tests"]} == {
        "vendor-x|toy|race=Black~White",
        "vendor-x|toy|race=Asian~White",
        "vendor-x|toy|race=Black~White|anger->disgust",
        "vendor-x|toy|race=Asian~White|anger->disgust",
    }
    assert document["run"]["datasets"]["toy"]["images"] == 527
    assert "<html" in (reports / "fairness.html").read_text()

    suite = ET.parse(reports / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    props = {
        p.get("name"): p.get("value")
        for p in cases["test_accuracy_gap[vendor-x|toy|race=Black~White]"].iter("property")
    }
    assert props["n[Black]"] == "250" and props["n[White]"] == "260"
    assert props["verdict"] == "FAIL" and props["estimate"] == f"{160 / 250 - 230 / 260:.6g}"
    assert {"ci_low", "ci_high", "p", "p_adjusted", "threshold"} <= set(props)
    suite_props = {p.get("name") for p in suite.find("testsuite").find("properties").iter("property")}
    assert {"seed", "thresholds_sha256", "dataset[toy].fingerprint", "model[vendor-x]"} <= suite_props


DECISION = (
    "fer-fairness decision: GATE CLOSED: 2 FAIL (a disparity beyond tolerance shown), 0 PASS, "
    "2 INCONCLUSIVE (not enough evidence either way; skipped by policy inconclusive = skip)"
)


def test_one_decision_line_in_every_report(pytester, study):
    result = pytester.runpytest(*study)
    lines = result.stdout.lines
    at = lines.index(DECISION)
    assert lines[at - 1].startswith("report: ")  # the last fer-fairness line, after the report paths
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    assert document["decision"]["line"] == DECISION
    assert (document["decision"]["fail"], document["decision"]["pass"], document["decision"]["inconclusive"]) == (
        2,
        0,
        2,
    )
    assert document["decision"]["partial"] is False
    page = (pytester.path / "reports" / "fairness.html").read_text()
    assert -1 < page.index(DECISION) < page.index("Verdict matrix")  # at the top, before the matrix
    suite = ET.parse(pytester.path / "reports" / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.find("testsuite").find("properties").iter("property")}
    assert props["decision"] == DECISION and props["partial"] == "false"


@pytest.mark.parametrize(
    ("args", "status", "ran"),
    [
        (["-k", "accuracy_gap"], "GATE CLOSED", "2 of 4"),
        (["-k", "test_confusion_ratio and Asian"], "NO DISPARITY SHOWN, NOT CLEARED", "1 of 4"),
        (["--collect-only"], None, None),  # nothing ran, nothing decided, and no report written
    ],
)
def test_a_partial_run_says_so(pytester, study, args, status, ran):
    result = pytester.runpytest(*study, *args)
    if ran is None:
        assert "fer-fairness decision" not in result.stdout.str()
        assert not (pytester.path / "reports" / "fairness.json").exists()
        return
    result.stdout.fnmatch_lines([f"fer-fairness decision: {status}: *; partial run: {ran} fairness tests ran"])
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    assert document["decision"]["partial"] is True
    assert f"partial run: {ran} fairness tests ran" in (pytester.path / "reports" / "fairness.html").read_text()


def test_a_run_stopped_before_any_fairness_test_still_says_nothing_was_decided(pytester, study):
    (pytester.path / "fairness_tests" / "test_a_first.py").write_text("def test_broken():\n    assert False\n")
    result = pytester.runpytest(*study, "-x")
    result.stdout.fnmatch_lines(["fer-fairness decision: NOTHING DECIDED: *; partial run: 0 of 4 fairness tests ran"])


def test_inconclusive_can_be_made_a_failure(pytester, study):
    (pytester.path / "thresholds.toml").write_text(ONLY_TWO + "\n" + "")
    text = ONLY_TWO.replace("min_group_size = 30", 'min_group_size = 30\ninconclusive = "fail"')
    (pytester.path / "thresholds.toml").write_text(text)
    result = pytester.runpytest(*study)
    result.assert_outcomes(failed=4)


def test_one_report_under_xdist(pytester, study):
    result = pytester.runpytest_subprocess(*study, "-n", "2")
    result.assert_outcomes(failed=2, skipped=2)
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    assert len(document["tests"]) == 4
    assert document["run"]["datasets"]["toy"]["fingerprint"]  # facts came back from a worker
    assert (document["decision"]["ran"], document["decision"]["planned"]) == (4, 4)  # counted by a worker
    suite = ET.parse(pytester.path / "reports" / "junit.xml").getroot()
    assert len(list(suite.iter("testcase"))) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fairness-seed=-3"], "*--fairness-seed: must be a non-negative integer, got '-3'*"),
        (
            ["--fairness-dataset=manifset:x.csv"],
            "*unknown dataset kind 'manifset' in 'manifset:x.csv'; did you mean 'manifest'?*",
        ),
        (["--fairness-model=predictons:x.csv"], "*unknown model kind 'predictons'*did you mean 'predictions'?*"),
        (
            ["--fairness-thresholds=missing.toml"],
            "*missing.toml: cannot read the thresholds file (No such file or directory)*",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_4(pytester, args, message):
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_bad_thresholds_key_is_a_usage_error(pytester, study):
    (pytester.path / "thresholds.toml").write_text("[settings]\nalpha = 0.7\n")
    result = pytester.runpytest(*study)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*thresholds.toml: 'settings.alpha' must be a number in (0, 0.5]; got 0.7*"])


def test_data_errors_found_while_loading_stop_the_run_cleanly(pytester, study):
    (pytester.path / "predictions.csv").write_text("sample_id,prediction\ns00000,anger\n")
    result = pytester.runpytest(*study)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: model 'vendor-x' has no prediction for 526 of 527 samples of dataset 'toy'*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "reports" / "fairness.json").exists()


def test_unrelated_runs_write_no_reports(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest("test_plain.py")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


def test_options_are_documented_in_one_group(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "fer-fairness: demographic fairness gate for FER models:",
            "*--fairness-dataset=SPEC*",
            "*--fairness-model=SPEC*",
            "*--fairness-thresholds=PATH*",
            "*--fairness-report-dir=DIR*",
            "*--fairness-seed=N*",
            "*--fairness-cache-dir=DIR*",
        ]
    )


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            '[reference]\nrace = "Martian"\n',
            "*'reference.race' = 'Martian' is not a group of dataset 'toy' (groups: Asian, Black, White)*",
        ),
        ('[reference]\nrase = "White"\n', "*'reference.rase' names no grouping of dataset 'toy' (groupings: race)*"),
        (
            '[groups]\nattributes = ["gender"]\n',
            "*groups names attribute 'gender', which dataset 'toy' lacks (it has: race)*",
        ),
        (
            '[criteria.confusion_ratio]\npairs = ["anger->fear"]\n',
            "*'criteria.confusion_ratio.pairs' names anger->fear, but dataset 'toy' has only anger, disgust*",
        ),
    ],
)
def test_policy_that_does_not_fit_the_dataset_is_a_usage_error(pytester, study, policy, message):
    (pytester.path / "thresholds.toml").write_text(
        '[groups]\nintersections = "none"\n' * ("groups" not in policy) + policy
    )
    result = pytester.runpytest(*study)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_fairness_tests_outside_a_fairness_folder_still_fail_cleanly(pytester, monkeypatch):
    # No --fairness option and a folder not named in fairness_testpaths: the run is only recognised
    # when a fairness test is collected, and a data error then is one collection error per module.
    from fer_fairness import pipeline
    from fer_fairness.errors import DatasetError

    def broken(state):
        raise DatasetError("manifest faces.csv: no samples")

    monkeypatch.setattr(pipeline, "load", broken)  # datasets load while tests are named
    pytester.mkdir("checks")
    (pytester.path / "checks" / "test_fair.py").write_text(FAIRNESS_TESTS)
    result = pytester.runpytest("checks")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*fer-fairness: manifest faces.csv: no samples*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--fairness-concurrency=0", "*--fairness-concurrency: must be an integer from 1 to 256, got '0'*"),
        ("--fairness-timeout=-1", "*--fairness-timeout: must be a positive number of seconds, got '-1'*"),
        ("--fairness-timeout=inf", "*--fairness-timeout: must be a positive number of seconds, got 'inf'*"),
        ("--fairness-timeout=nan", "*--fairness-timeout: must be a positive number of seconds, got 'nan'*"),
        ("--fairness-max-retries=two", "*--fairness-max-retries: must be a non-negative integer, got 'two'*"),
        ("--fairness-budget-tokens=0", "*--fairness-budget-tokens: must be a positive integer, got '0'*"),
    ],
)
def test_api_limits_are_checked_when_parsed(pytester, option, message):
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


MISTYPED = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("accuracy_gapp")
def test_gap(fairness_record):
    gate(fairness_record)
"""

KNOWN = ", ".join(c.name for c in BUILTIN)  # in the catalogue's order


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            '"accuracy_gapp"',
            "ERROR: fairness marker on fairness_tests/test_typo.py::test_gap names criterion 'accuracy_gapp', "
            f"which does not exist; did you mean 'accuracy_gap'? (known: {KNOWN})",
        ),
        (
            '"fairness_of_all"',
            "ERROR: fairness marker on fairness_tests/test_typo.py::test_gap names criterion 'fairness_of_all', "
            f"which does not exist (known: {KNOWN})",
        ),
        (
            "",
            "ERROR: fairness marker on fairness_tests/test_typo.py::test_gap names no criterion (got None); "
            f'write @pytest.mark.fairness("accuracy_gap") (known: {KNOWN})',
        ),
    ],
)
@pytest.mark.parametrize("collect_only", [False, True])
def test_a_mistyped_marker_is_a_usage_error(pytester, study, marker, message, collect_only):
    (pytester.path / "fairness_tests" / "test_typo.py").write_text(MISTYPED.replace('"accuracy_gapp"', marker))
    result = pytester.runpytest(*study, *(["--collect-only"] if collect_only else []))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.lines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_mistyped_marker_under_xdist_is_one_erroring_test_with_the_same_line(pytester, study):
    # An xdist worker cannot end the run with a usage error; the marker's test errors with the message.
    (pytester.path / "fairness_tests" / "test_typo.py").write_text(MISTYPED)
    result = pytester.runpytest_subprocess(*study, "-n", "2", "-rE")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "fairness marker on fairness_tests/test_typo.py::test_gap names criterion 'accuracy_gapp', which does "
            f"not exist; did you mean 'accuracy_gap'? (known: {KNOWN})",
            "ERROR fairness_tests/test_typo.py::test_gap[[]mistyped-marker[]]*",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_disabled_criterion_is_one_skipped_test_that_says_so(pytester, study):
    policy = pytester.path / "thresholds.toml"
    policy.write_text(ONLY_TWO + "enabled = false\n")  # appended to [criteria.confusion_ratio]
    result = pytester.runpytest(*study, "-rs", "-v")
    result.assert_outcomes(failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "fairness_tests/test_fair.py::test_confusion_ratio[[]disabled[]] SKIPPED*",
            f"SKIPPED [[]1[]] fairness_tests/test_fair.py:*: criterion 'confusion_ratio' is disabled in {policy}",
        ]
    )
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    assert {t["criterion"] for t in document["tests"]} == {"accuracy_gap"}
    assert document["decision"]["partial"] is False  # a disabled criterion is policy, not a partial run


def test_error_cells_of_a_predictions_file_are_not_evaluated(pytester):
    """2 of 229 samples marked error: below the 1% default the run goes on, and they are shown per group."""
    cells = [
        ({"race": "Black"}, "anger", "anger", 60),
        ({"race": "Black"}, "anger", "error", 2),
        ({"race": "Black"}, "disgust", "disgust", 52),
        ({"race": "White"}, "anger", "anger", 60),
        ({"race": "White"}, "disgust", "disgust", 55),
    ]
    args = _project(pytester, cells)
    result = pytester.runpytest(*args)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    result.stdout.fnmatch_lines(
        ["vendor-x on toy: 2 samples not evaluated (no answer arrived; never scored), by race: Black 2"]
    )
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    assert document["run"]["not_evaluated"] == {"vendor-x": {"toy": {"race": {"Black": 2, "White": 0}}}}
    page = (pytester.path / "reports" / "fairness.html").read_text()
    assert "Not evaluated" in page and "Black: 2" in page

    strict = ONLY_TWO.replace("[settings]", "[settings]\nmax_not_evaluated = 0.005")
    (pytester.path / "thresholds.toml").write_text(strict)  # 2 / 229 = 0.87% > 0.5%
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: model 'vendor-x' left 2 of 229 samples of dataset 'toy' not evaluated (transport failures); "
        "above settings.max_not_evaluated = 0.005 the run stops. "
        "Supply answers for the 2 samples marked 'error', or raise the limit."
    ) in result.stderr.lines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("value", ["1.5", "-0.1", '"1%"'])
def test_max_not_evaluated_is_a_share(pytester, study, value):
    (pytester.path / "thresholds.toml").write_text(f"[settings]\nmax_not_evaluated = {value}\n")
    result = pytester.runpytest(*study)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*thresholds.toml: 'settings.max_not_evaluated' must be a number in [[]0, 1]; got *"])


ODD_BLACK, ODD_WHITE = "Bl\x01ack\x1b", "$\\frac{$ White"  # a control character; mathtext that cannot parse


@pytest.fixture
def odd_study(pytester):
    """The study's shape with names a chart could misread as markup and junit.xml could not hold."""
    cells = [
        ({"race": ODD_BLACK}, "anger", "anger", 110),
        ({"race": ODD_BLACK}, "anger", "disgust", 90),
        ({"race": ODD_WHITE}, "anger", "anger", 170),
        ({"race": ODD_WHITE}, "anger", "disgust", 30),
        ({"race": ODD_BLACK}, "disgust", "disgust", 50),
        ({"race": ODD_WHITE}, "disgust", "disgust", 60),
    ]
    return _project(pytester, cells, dataset="to$y", model="US$ 5 and $3")


def test_odd_names_reach_every_report(pytester, odd_study):
    result = pytester.runpytest(*odd_study)
    result.assert_outcomes(failed=2)
    reports = pytester.path / "reports"
    document = json.loads((reports / "fairness.json").read_text())
    assert {(t["model"], t["dataset"], t["group"]) for t in document["tests"]} == {("US$ 5 and $3", "to$y", ODD_BLACK)}
    assert "<html" in (reports / "fairness.html").read_text()
    suite = ET.parse(reports / "junit.xml").getroot()  # well-formed despite the control characters
    names = {p.get("name") for p in suite.iter("property")}
    assert {"n[Bl#x01ack#x1B]", "n[$\\frac{$ White]", "model[US$ 5 and $3]", "dataset[to$y].fingerprint"} <= names


@pytest.mark.parametrize("kind", ["report", "cache"])
@pytest.mark.parametrize("target", ["taken", "taken/sub"])
def test_a_folder_option_naming_a_file_is_a_usage_error(pytester, kind, target):
    (pytester.path / "taken").write_text("not a folder")
    pytester.mkdir("fairness_tests")
    result = pytester.runpytest("fairness_tests", f"--fairness-{kind}-dir={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: {kind} folder {pytester.path / target} cannot be made: {pytester.path / 'taken'} is a file "
            f"(set --fairness-{kind}-dir)"
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_policy_that_disables_every_criterion_is_a_usage_error(pytester, study):
    from fer_fairness.config import CRITERIA

    policy = "".join(f"[criteria.{name}]\nenabled = false\n" for name in CRITERIA)
    (pytester.path / "thresholds.toml").write_text(policy)
    result = pytester.runpytest(*study)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: every criterion is disabled in {pytester.path / 'thresholds.toml'}*"])
    assert not (pytester.path / "reports").exists()


def test_a_failure_while_rendering_leaves_the_previous_pair_in_place(pytester, study, monkeypatch):
    # Through sys.modules, the module the plugin imports: an earlier in-process run may have left a stale
    # fer_fairness.report.html attribute behind (pytester drops the modules a run imported).
    html = importlib.import_module("fer_fairness.report.html")
    pytester.runpytest(*study)
    reports = pytester.path / "reports"
    before = {name: (reports / name).read_bytes() for name in ("fairness.json", "fairness.html")}
    (pytester.path / "thresholds.toml").write_text(ONLY_TWO.replace("min_group_size = 30", "min_group_size = 10"))

    def broken(**kwargs):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(html, "render_html", broken)
    result = pytester.runpytest(*study)
    assert "renderer broke" in result.stdout.str() + result.stderr.str()
    # The second run's JSON (Asian now tested) was ready first; it must not sit beside the first run's page.
    assert {p.name for p in reports.iterdir()} == {
        "fairness.json",
        "fairness.html",
        "fairness.md",
        "fairness-outcomes.csv.gz",
        "junit.xml",
    }
    assert {name: (reports / name).read_bytes() for name in before} == before


def test_a_file_named_reports_does_not_trouble_an_unrelated_run(pytester):
    (pytester.path / "reports").write_text("someone else's file")
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    pytester.runpytest("test_plain.py").assert_outcomes(passed=1)


WORKERS_MUST_NOT_EVALUATE = """
import fer_fairness.pipeline


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: evaluating would call the model again
        def refuse(state):
            raise RuntimeError("an xdist worker evaluated")

        fer_fairness.pipeline.run = refuse
"""


def test_xdist_workers_read_the_controllers_records_and_never_evaluate(pytester, study):
    # A worker that evaluated would call every model again (a flaky API re-asked, paid twice, and
    # answering differently from the controller's run facts); here it would crash the run.
    (pytester.path / "conftest.py").write_text(WORKERS_MUST_NOT_EVALUATE)
    result = pytester.runpytest_subprocess(*study, "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, skipped=2)
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    assert len(document["tests"]) == 4
    assert not list((pytester.path / ".fairness-cache" / "handoff").glob("*"))  # cleaned up after the run


def test_a_project_without_fairness_tests_does_not_notice_the_plugin(pytester):
    # Installed but unused: no evaluation, no cache, no reports, from the rootdir or elsewhere.
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    for args in ([], ["--co", "-q"]):
        result = pytester.runpytest(*args, "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.OK
        result.stdout.no_fnmatch_line("*fer-fairness: *fairness tests from*")
    assert not (pytester.path / ".fairness-cache").exists()
    assert not (pytester.path / "reports").exists()


def test_collect_only_leaves_the_last_reports_in_place(pytester, study):
    assert pytester.runpytest(*study).ret == pytest.ExitCode.TESTS_FAILED
    reports = pytester.path / "reports"
    before = {p.name: p.read_bytes() for p in reports.iterdir()}
    assert {"junit.xml", "fairness.json", "fairness.html"} <= set(before)
    result = pytester.runpytest(*study, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert {p.name: p.read_bytes() for p in reports.iterdir()} == before


def test_a_path_option_in_space_form_cannot_choose_the_policy(pytester, study):
    # pytest picks its rootdir before installed plugins add their options: the value of
    # `--fairness-cache-dir PATH` reads as a test path, and a folder with its own ini and
    # thresholds.toml would silently become the rootdir, and its policy the one in force.
    other = pytester.mkdir("other")
    (other / "pytest.ini").write_text("[pytest]\n")
    (other / "thresholds.toml").write_text("[settings]\nalpha = 0.01\n")
    (other / "cache").mkdir()  # a second run: pytest only takes paths that exist into its rootdir search
    project = pytester.path / "project"
    project.mkdir()
    for name in ("fairness_tests", "thresholds.toml"):
        (pytester.path / name).rename(project / name)
    args = [a for a in study if not a.startswith("fairness_tests")]

    def run(*extra):  # a plain process in the project folder, as a user would start it
        command = [sys.executable, "-m", "pytest", "fairness_tests", *extra, *args, "-p", "no:cacheprovider"]
        return subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)

    spaced = run("--fairness-cache-dir", "../other/cache")
    assert spaced.returncode == pytest.ExitCode.USAGE_ERROR
    assert "from the value of --fairness-cache-dir given as a separate word" in spaced.stderr
    joined = run("--fairness-cache-dir=../other/cache")
    assert joined.returncode == pytest.ExitCode.TESTS_FAILED
    assert f"thresholds {project / 'thresholds.toml'}" in joined.stdout
