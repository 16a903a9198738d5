"""A server that echoes the API key never gets it into an artifact or a message: with a unique canary
as OPENAI_API_KEY, every file the run leaves (reports, junit.xml, the response cache's sqlite, read
as bytes) and everything it prints is searched for the canary and for each half of it."""

from __future__ import annotations

import uuid

import pytest

from tests.models.fake_api import FakeAPI
from tests.plugin.test_fault_mixes import FAIRNESS_TESTS
from tests.plugin.test_not_evaluated import api_study

pytest.importorskip("openai")


def _leaks(canary: str, blobs: dict[str, bytes]) -> list[str]:
    # A half is enough to find a key cut short at a message's length limit (htmlecho cuts across it).
    needles = [canary, canary[: len(canary) // 2], canary[len(canary) // 2 :]]
    return [f"{name} holds {needle!r}" for name, blob in blobs.items() for needle in needles if needle.encode() in blob]


@pytest.mark.parametrize(
    ("behaviours", "code"),
    [
        pytest.param(["echofilter", "htmlecho", "htmlecho"], 0, id="filter-and-gateway-echo"),
        pytest.param(["echo401"], 4, id="rejected-key-echo"),
    ],
)
def test_the_canary_key_appears_in_no_file_and_no_message(pytester, monkeypatch, behaviours, code):
    canary = f"sk-canary-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    manifest, digests, truth = api_study(pytester.path, per_group=6)
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_api.py").write_text(FAIRNESS_TESTS)
    (pytester.path / "thresholds.toml").write_text(
        '[groups]\nintersections = "none"\n[settings]\nmax_not_evaluated = 1.0\n'
    )
    with FakeAPI(default=lambda image: f"answer:{truth[image]}") as api:
        for digest in digests[::3]:
            api.script(digest, *behaviours)
        monkeypatch.setenv("OPENAI_API_KEY", canary)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{api.url}/v1")
        result = pytester.runpytest_subprocess(
            "fairness_tests",
            f"--fairness-dataset=manifest:{manifest}?name=faces",
            "--fairness-model=openai:gpt-fake",
            "--fairness-concurrency=1",  # echo401 stops the run: the first echoed key must be the one reported
            "--fairness-max-retries=1",
            "-p",
            "no:cacheprovider",
        )
        echoed = [c for c in api.calls if c.behaviour in behaviours and c.completed]
    assert result.ret == code
    assert echoed, "the server never echoed the key: the test would prove nothing"
    files = {str(p): p.read_bytes() for p in pytester.path.rglob("*") if p.is_file()}
    assert any(".sqlite" in name or ".db" in name for name in files) or code, sorted(files)
    messages = {"stdout": result.stdout.str().encode(), "stderr": result.stderr.str().encode()}
    assert _leaks(canary, files | messages) == []
