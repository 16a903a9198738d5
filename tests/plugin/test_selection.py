"""Test selection, JUnit and the terminal, through pytester on a tiny study with known gaps."""

import xml.etree.ElementTree as ET

import pytest

from tests.plugin.test_plugin import _project


@pytest.fixture
def two_gaps(pytester):
    """Accuracy: race Black 420/660 vs White 510/660 (a gap of 90/660 = 0.136); gender female 525/660
    vs male 405/660 (a gap of 120/660 = 0.182, the wider one)."""
    cells = [
        ({"race": "Black", "gender": "female"}, "anger", "anger", 180),
        ({"race": "Black", "gender": "female"}, "anger", "disgust", 120),
        ({"race": "Black", "gender": "male"}, "anger", "anger", 180),
        ({"race": "Black", "gender": "male"}, "anger", "disgust", 120),
        ({"race": "White", "gender": "female"}, "anger", "anger", 285),
        ({"race": "White", "gender": "female"}, "anger", "disgust", 15),
        ({"race": "White", "gender": "male"}, "anger", "anger", 165),
        ({"race": "White", "gender": "male"}, "anger", "disgust", 135),
        *(({"race": r, "gender": g}, "disgust", "disgust", 30) for r in ("Black", "White") for g in ("female", "male")),
    ]
    return _project(pytester, cells, model="vendor x")


def test_k_selects_by_model_criterion_and_attribute(pytester, two_gaps):
    result = pytester.runpytest(*two_gaps, "-k", "model_vendor_x and criterion_accuracy_gap and attribute_gender")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 failed, 3 deselected*"])


def test_k_selects_by_group_reference_and_detail_ignoring_case(pytester, two_gaps):
    result = pytester.runpytest(
        *two_gaps, "-k", "group_white and reference_Black and detail_anger_disgust", "--co", "-q"
    )
    result.stdout.fnmatch_lines(["*test_confusion_ratio*race=White~Black|anger->disgust*", "1/4 tests collected*"])


def test_failures_lead_with_numbers_and_group_by_finding(pytester, two_gaps, monkeypatch):
    monkeypatch.setenv("CI", "true")  # as on CI, where pytest's short summary does not cut lines to the width
    result = pytester.runpytest(*two_gaps, "-rf")
    result.stdout.fnmatch_lines(
        [
            "2 FAIL accuracy_gap, vendor x on toy; worst gender=*: estimate *0.182, CI*",
            "evaluation (load, predict, evaluate) took * s",
            "FAILED *test_accuracy_gap*gender=* - *FAIL: estimate *0.182, CI [[]*] outside band [[]-0.050, 0.050[]]",
        ]
    )


def test_junit_tells_inconclusive_from_a_skip(pytester, two_gaps):
    (pytester.path / "fairness_tests" / "test_plain.py").write_text(
        "import pytest\n\ndef test_plain():\n    pytest.skip('an ordinary skip')\n"
    )
    (pytester.path / "thresholds.toml").write_text(
        '[settings]\nmin_group_size = 30\n[groups]\nintersections = "none"\n'
        '[criteria.accuracy_gap]\ntolerance = 0.5\n[criteria.confusion_ratio]\npairs = ["anger->disgust"]\n'
    )
    result = pytester.runpytest(*two_gaps)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    suite = ET.parse(pytester.path / "reports" / "junit.xml").getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    plain = cases["test_plain"].find("skipped")
    assert plain.get("message") == "an ordinary skip"
    assert cases["test_plain"].find("properties") is None
    seen = set()
    for name, case in cases.items():
        if name == "test_plain":
            continue
        verdict = {p.get("name"): p.get("value") for p in case.iter("property")}["verdict"]
        seen.add(verdict)
        skipped = case.find("skipped")
        if verdict == "INCONCLUSIVE":
            assert skipped.get("message").startswith("INCONCLUSIVE: ")
        else:
            assert skipped is None
    assert "INCONCLUSIVE" in seen  # the confusion ratios at these n settle nothing


def test_a_criterion_with_nothing_to_test_says_why(pytester, two_gaps):
    (pytester.path / "fairness_tests" / "test_more.py").write_text(
        "import pytest\nfrom fer_fairness import gate\n\n"
        '@pytest.mark.fairness("robustness_gap")\ndef test_robust(fairness_record):\n    gate(fairness_record)\n\n'
        '@pytest.mark.fairness("counterfactual_flip")\ndef test_flip(fairness_record):\n    gate(fairness_record)\n'
    )
    (pytester.path / "thresholds.toml").write_text("[criteria.robustness_gap]\nenabled = true\n")
    result = pytester.runpytest(*two_gaps, "-rs", "-k", "robust or flip")
    result.stdout.fnmatch_lines(
        [
            "SKIPPED*test_more.py:4: criterion 'robustness_gap' runs only with a sweep: list perturbations under "
            "[[]criteria.robustness_gap[]]*",
            "SKIPPED*test_more.py:8: criterion 'counterfactual_flip' needs a dataset of counterfactual renders*",
        ],
        consecutive=False,
    )
    assert "empty parameter set" not in result.stdout.str()
