"""The decision line, table-driven: every row spells out by hand what a reader must be told."""

import pytest

from fer_fairness.report.decision import decide_run


def records(fail: int = 0, passed: int = 0, inconclusive: int = 0) -> list[dict[str, str]]:
    return [{"verdict": "FAIL"}] * fail + [{"verdict": "PASS"}] * passed + [{"verdict": "INCONCLUSIVE"}] * inconclusive


SKIPPED = "(not enough evidence either way; skipped by policy inconclusive = skip)"
FAILED = "(not enough evidence either way; failed by policy inconclusive = fail)"
SHOWN = "(a disparity beyond tolerance shown)"

CASES = [
    # (counts, mode, inconclusive policy, planned, expected line after "fer-fairness decision: ")
    (
        (43, 21, 369),
        "harm",
        "skip",
        433,
        f"GATE CLOSED: 43 FAIL {SHOWN}, 21 PASS, 369 INCONCLUSIVE {SKIPPED}",
    ),
    (
        (0, 22, 411),
        "harm",
        "skip",
        433,
        f"NO DISPARITY SHOWN, NOT CLEARED: 0 FAIL, 22 PASS, 411 INCONCLUSIVE {SKIPPED}",
    ),
    (
        (0, 22, 411),
        "equivalence",
        "skip",
        433,
        f"NOT RELEASABLE: 0 FAIL, 22 PASS, 411 INCONCLUSIVE {SKIPPED}; equivalence needs every test to PASS",
    ),
    # The policy turns INCONCLUSIVE into test failures: the gate is closed, and the line says why.
    ((0, 22, 411), "harm", "fail", 433, f"GATE CLOSED: 0 FAIL, 22 PASS, 411 INCONCLUSIVE {FAILED}"),
    ((0, 22, 411), "equivalence", "fail", 433, f"GATE CLOSED: 0 FAIL, 22 PASS, 411 INCONCLUSIVE {FAILED}"),
    ((0, 30, 0), "harm", "skip", 30, "GATE OPEN: 0 FAIL, 30 PASS, 0 INCONCLUSIVE"),
    ((0, 30, 0), "equivalence", "skip", 30, "GATE OPEN: 0 FAIL, 30 PASS, 0 INCONCLUSIVE"),
    ((2, 0, 0), "equivalence", "skip", 2, f"GATE CLOSED: 2 FAIL {SHOWN}, 0 PASS, 0 INCONCLUSIVE"),
    # Planned count unknown (no collection count available): never claimed partial.
    ((0, 5, 0), "harm", "skip", None, "GATE OPEN: 0 FAIL, 5 PASS, 0 INCONCLUSIVE"),
    # A partial run never opens the gate: what did not run was not cleared.
    (
        (0, 5, 0),
        "harm",
        "skip",
        433,
        "NO DISPARITY SHOWN, NOT CLEARED: 0 FAIL, 5 PASS, 0 INCONCLUSIVE; partial run: 5 of 433 fairness tests ran",
    ),
    (
        (0, 5, 0),
        "equivalence",
        "skip",
        433,
        "NOT RELEASABLE: 0 FAIL, 5 PASS, 0 INCONCLUSIVE; equivalence needs every test to PASS; "
        "partial run: 5 of 433 fairness tests ran",
    ),
    (
        (1, 0, 0),
        "harm",
        "skip",
        433,
        f"GATE CLOSED: 1 FAIL {SHOWN}, 0 PASS, 0 INCONCLUSIVE; partial run: 1 of 433 fairness tests ran",
    ),
    (
        (0, 0, 0),
        "harm",
        "skip",
        433,
        "NOTHING DECIDED: 0 FAIL, 0 PASS, 0 INCONCLUSIVE; partial run: 0 of 433 fairness tests ran",
    ),
]


@pytest.mark.parametrize(("counts", "mode", "policy", "planned", "expected"), CASES)
def test_decision_line(counts, mode, policy, planned, expected):
    decision = decide_run(records(*counts), mode=mode, inconclusive=policy, planned=planned)
    assert decision.line == "fer-fairness decision: " + expected
    assert decision.status == expected.split(":")[0]
    fail, passed, inconclusive = counts
    assert (decision.fail, decision.passed, decision.inconclusive, decision.ran) == (
        fail,
        passed,
        inconclusive,
        fail + passed + inconclusive,
    )
    assert decision.partial == ("partial run" in expected)


def test_a_skipped_file_makes_the_run_partial_even_when_every_collected_test_ran():
    decision = decide_run(
        records(passed=4), mode="harm", inconclusive="skip", planned=4, partial_note="--lf skipped 2 test file(s)"
    )
    assert decision.partial
    assert decision.line.endswith("; partial run: 4 of 4 fairness tests ran (--lf skipped 2 test file(s))")
    assert decision.status != "GATE OPEN"


def test_json_object_names_every_count_and_the_policy():
    decision = decide_run(records(1, 2, 3), mode="equivalence", inconclusive="skip", planned=10)
    assert decision.to_dict() == {
        "line": decision.line,
        "status": "GATE CLOSED",
        "fail": 1,
        "pass": 2,
        "inconclusive": 3,
        "ran": 6,
        "planned": 10,
        "partial": True,
        "mode": "equivalence",
        "inconclusive_policy": "skip",
    }
