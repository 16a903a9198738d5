"""junit.xml validates against the schema of the JUnit family it is written in, for every name.

The oracles are the schemas: Jenkins' junit-10.xsd for xunit2 (the one pytest checks its own xunit2
output against), and for xunit1, which has no published schema, that file with exactly the additions
pytest's xunit1 writer makes (tests/data/junit-xunit1.xsd says which).
"""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.plugin.test_plugin import ODD_BLACK, _project

xmlschema = pytest.importorskip("xmlschema", reason="the dev extra installs xmlschema")

DATA = Path(__file__).parents[1] / "data"
XUNIT2 = xmlschema.XMLSchema(DATA / "junit-10.xsd")
XUNIT1 = xmlschema.XMLSchema(DATA / "junit-xunit1.xsd")

# The study's shape, one group named with a control character: one FAIL, one INCONCLUSIVE at least.
CELLS = [
    ({"race": ODD_BLACK}, "anger", "anger", 110),
    ({"race": ODD_BLACK}, "anger", "disgust", 90),
    ({"race": "White"}, "anger", "anger", 170),
    ({"race": "White"}, "anger", "disgust", 30),
    ({"race": ODD_BLACK}, "disgust", "disgust", 50),
    ({"race": "White"}, "disgust", "disgust", 60),
    ({"race": "Asian"}, "anger", "anger", 10),
    ({"race": "Asian"}, "disgust", "disgust", 7),
]


@pytest.fixture
def odd(pytester):
    return _project(pytester, CELLS, model="vendor\x07x")


def _cases(path: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")}


def _verdicts(cases: dict[str, ET.Element]) -> dict[str, str]:
    return {
        name: {p.get("name"): p.get("value") for p in case.iter("property")}.get("verdict", "")
        for name, case in cases.items()
    }


def test_the_default_junit_is_xunit1_with_a_verdict_per_test(pytester, odd):
    result = pytester.runpytest(*odd)
    result.assert_outcomes(failed=2, skipped=2)
    path = pytester.path / "reports" / "junit.xml"
    XUNIT1.validate(path)
    verdicts = _verdicts(_cases(path))
    assert sorted(verdicts.values()) == ["FAIL", "FAIL", "INCONCLUSIVE", "INCONCLUSIVE"]
    assert not XUNIT2.is_valid(path)  # the control: per-test properties are what xunit2 forbids


@pytest.mark.parametrize(
    "how",
    [["--junitxml=mine.xml"], ["-o", "junit_family=xunit2"], ["--junitxml=mine.xml", "-o", "junit_family=xunit2"]],
    ids=["own-path-pytest-default", "default-path-family-set", "both"],
)
def test_xunit2_validates_and_still_tells_inconclusive_from_a_skip(pytester, odd, how):
    result = pytester.runpytest(*odd, *how)
    result.assert_outcomes(failed=2, skipped=2)
    path = pytester.path / ("mine.xml" if "--junitxml=mine.xml" in how else "reports/junit.xml")
    XUNIT2.validate(path)
    cases = _cases(path)
    assert all(case.find("properties") is None for case in cases.values())
    messages = sorted(
        (case.find("skipped") if case.find("skipped") is not None else case.find("failure")).get("message")
        for case in cases.values()
    )
    # pytest prefixes a failure's message with "Failed: "; ours starts right after it.
    prefixes = [m.removeprefix("Failed: ").split(":")[0] for m in messages]
    assert prefixes == ["FAIL", "FAIL", "INCONCLUSIVE", "INCONCLUSIVE"]
    suite = {p.get("name") for p in ET.parse(path).getroot().find("testsuite").find("properties")}
    assert {"decision", "seed", "model[vendor#x07x]"} <= suite  # run facts stay: the schema allows them per suite


def test_a_project_that_asks_for_legacy_gets_properties(pytester, odd):
    result = pytester.runpytest(*odd, "--junitxml=mine.xml", "-o", "junit_family=legacy")
    result.assert_outcomes(failed=2, skipped=2)
    XUNIT1.validate(pytester.path / "mine.xml")
    assert sorted(_verdicts(_cases(pytester.path / "mine.xml")).values())[0] == "FAIL"


def test_xdist_workers_write_the_same_family(pytester, odd):
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(*odd, "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, skipped=2)
    path = pytester.path / "reports" / "junit.xml"
    XUNIT1.validate(path)
    assert sorted(_verdicts(_cases(path)).values()) == ["FAIL", "FAIL", "INCONCLUSIVE", "INCONCLUSIVE"]
