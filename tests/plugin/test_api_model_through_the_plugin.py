"""An API model through the whole plugin: options reach the adapter, usage and prompts reach the
terminal and the report, and a re-run (say after a threshold change) makes no new calls."""

import hashlib
import json

import pandas as pd
import pytest

from tests.models.fake_api import FakeAPI
from tests.studies import write_study

pytest.importorskip("openai")

FAIRNESS_TESTS = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("non_answer_gap")
def test_non_answer_gap(fairness_record):
    gate(fairness_record)
"""


def test_refusals_for_one_group_fail_and_a_rerun_is_served_from_the_cache(pytester, monkeypatch):
    cells = [({"group": g}, e, e, 40) for g in ("majority", "minority") for e in ("anger", "happiness")]
    manifest, _ = write_study(pytester.path, cells)
    samples = pd.read_csv(manifest)
    behaviour = {}
    for n, row in enumerate(samples.itertuples()):
        digest = hashlib.sha256((pytester.path / row.path).read_bytes()).hexdigest()
        refused = row.group == "minority" and n % 4 == 0  # 20 of 80 minority faces refused
        behaviour[digest] = "refuse" if refused else f"answer:{row.emotion}"
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_api.py").write_text(FAIRNESS_TESTS)
    (pytester.path / "thresholds.toml").write_text('[groups]\nintersections = "none"\n')

    with FakeAPI(default=behaviour.__getitem__) as api:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{api.url}/v1")
        args = [
            "fairness_tests",
            f"--fairness-dataset=manifest:{manifest}?name=faces",
            "--fairness-model=openai:gpt-fake",
            "--fairness-concurrency=3",
            "-p",
            "no:cacheprovider",
        ]
        first = pytester.runpytest_subprocess(*args)
        first.assert_outcomes(failed=1)
        first.stdout.fnmatch_lines(
            [
                "*non-answer rate difference for group=minority vs majority: FAIL*",
                "gpt-fake: 160 calls, 0 cache hits*20 refused*",
            ]
        )
        assert api.count() == 160
        facts = json.loads((pytester.path / "reports" / "fairness.json").read_text())["run"]
        assert "anger, happiness" in facts["prompts"]["gpt-fake"]["chat[faces]"]
        assert facts["usage"]["gpt-fake"]["refused"] == 20

        # A stricter policy is a new run over the same answers: not one new call.
        (pytester.path / "thresholds.toml").write_text('[groups]\nintersections = "none"\n[settings]\nalpha = 0.01\n')
        second = pytester.runpytest_subprocess(*args)
        second.assert_outcomes(failed=1)
        second.stdout.fnmatch_lines(["gpt-fake: 0 calls, 160 cache hits*"])
        assert api.count() == 160
