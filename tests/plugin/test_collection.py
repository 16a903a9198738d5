"""Collection names the tests from the datasets alone; models are asked only for the tests selected."""

import pytest

from tests.plugin.test_extensions import _project

# Two models that log every batch they are asked (a file per model), and fail loudly if asked when
# they should not be.
CONFTEST = """
import os
import numpy as np
import fer_fairness

def _model(name):
    def predict(images):
        with open(f"{name}.calls", "a") as log:
            log.write(f"{len(images)}\\n")
        return ["Happy" if np.asarray(image).mean() > 128 else "ANGRY" for image in images]
    return fer_fairness.BatchModel(name, predict)

def pytest_fairness_models(config):
    return {"first": _model("first"), "second": _model("second")}

def pytest_fairness_datasets(config):
    return {"faces": lambda spec: fer_fairness.manifest("faces.csv", name="faces")}
"""

ARGS = ("--fairness-model=first", "--fairness-model=second", "--fairness-dataset=faces", "-p", "no:cacheprovider")


def _calls(pytester, model: str) -> int:
    log = pytester.path / f"{model}.calls"
    return sum(int(n) for n in log.read_text().split()) if log.exists() else 0


def test_collect_only_names_every_test_and_asks_no_model(pytester):
    _project(pytester, CONFTEST)
    result = pytester.runpytest_subprocess(*ARGS, "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["*test_accuracy_gap[[]first|faces|race=Black~White]*", "*test_accuracy_gap[[]second|faces|race=Black~White]*"]
    )
    assert _calls(pytester, "first") == _calls(pytester, "second") == 0
    assert not (pytester.path / "reports").exists()


def test_k_selecting_one_model_asks_only_that_model(pytester):
    _project(pytester, CONFTEST)
    result = pytester.runpytest_subprocess(*ARGS, "-k", "model_second")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # second's own gap (0.60 vs 0.95)
    result.stdout.fnmatch_lines(["*1 failed, 1 deselected*"])
    assert _calls(pytester, "first") == 0 and _calls(pytester, "second") == 200


def test_without_selection_every_model_is_asked_once(pytester):
    _project(pytester, CONFTEST)
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _calls(pytester, "first") == _calls(pytester, "second") == 200
