"""A broken server never changes a verdict silently: each mix of faults, run through the whole plugin,
ends with the exit code, the not-evaluated count and the model non-answer counts its script implies.

The oracle is the script: with ``--fairness-max-retries=1`` a fault queued once is retried into an
answer, a fault queued twice leaves the sample not evaluated (an ``error``, never scored, never
cached), and a model's own non-answer (a refusal, a label outside the set, a body that cannot be read
as an answer) is counted as ``refused`` or ``unparseable`` at its first call.
"""

from __future__ import annotations

import json

import pytest

from tests.models.fake_api import FakeAPI
from tests.plugin.test_not_evaluated import api_study

pytest.importorskip("openai")

FAIRNESS_TESTS = """
import pytest

@pytest.mark.fairness("non_answer_gap")
def test_non_answer_gap(fairness_record):
    pass  # the record (and with it fairness.json) is what this battery reads, not the verdict
"""

PER_GROUP = 10  # 20 images, sample i in group majority for i < 10 (api_study writes majority first)
TWICE = 2  # max_retries=1: two attempts, so a fault queued twice is final

# (id, behaviours per scripted image, images scripted, errors, refused, unparseable, limit, exit code)
# Each row scripts the first `scripted` images with `behaviours` (queued per request); the rest answer
# correctly. "limit" is settings.max_not_evaluated.
MIXES = [
    ("429-retry-after-then-answer", ["429:0"], 4, 0, 0, 0, 1.0, 0),
    ("429-without-retry-after-then-answer", ["429:none"], 3, 0, 0, 0, 1.0, 0),
    ("429-twice", ["429:0"] * TWICE, 3, 3, 0, 0, 1.0, 0),
    ("500-then-answer", ["500"], 5, 0, 0, 0, 1.0, 0),
    ("503-twice", ["503"] * TWICE, 4, 4, 0, 0, 1.0, 0),
    ("hang-then-answer", ["hang"], 2, 0, 0, 0, 1.0, 0),
    ("hang-twice", ["hang"] * TWICE, 2, 2, 0, 0, 1.0, 0),
    ("reset-then-answer", ["reset"], 3, 0, 0, 0, 1.0, 0),
    ("reset-twice", ["reset"] * TWICE, 3, 3, 0, 0, 1.0, 0),
    ("truncated-twice", ["truncated"] * TWICE, 3, 3, 0, 0, 1.0, 0),
    ("html-then-answer", ["html"], 3, 0, 0, 0, 1.0, 0),
    ("html-twice", ["html"] * TWICE, 3, 3, 0, 0, 1.0, 0),
    ("error200-twice", ["error200"] * TWICE, 2, 2, 0, 0, 1.0, 0),
    ("refusals", ["refuse"], 5, 0, 5, 0, 1.0, 0),
    ("content-filter", ["filter"], 2, 0, 2, 0, 1.0, 0),
    ("label-outside-the-set", ["text:purple"], 4, 0, 0, 4, 1.0, 0),
    ("malformed", ["malformed"], 2, 0, 0, 2, 1.0, 0),
    ("shape-message", ["shape:message"], 3, 0, 0, 3, 1.0, 0),
    ("shape-content", ["shape:content"], 2, 0, 0, 2, 1.0, 0),
    ("shape-fingerprint-is-still-an-answer", ["shape:fingerprint"], 3, 0, 0, 0, 1.0, 0),
    ("shape-usage-is-still-an-answer", ["shape:usage"], 3, 0, 0, 0, 1.0, 0),
    # Over the default limit (1 %) the run stops with one line and writes no report.
    ("503-twice-over-the-limit", ["503"] * TWICE, 3, 3, 0, 0, 0.01, 4),
]


def _run(pytester, monkeypatch, script: list[str], scripted: int, limit: float):
    manifest, digests, truth = api_study(pytester.path, per_group=PER_GROUP)
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_api.py").write_text(FAIRNESS_TESTS)
    (pytester.path / "thresholds.toml").write_text(
        f'[groups]\nintersections = "none"\n[settings]\nmax_not_evaluated = {limit}\n'
    )
    with FakeAPI(default=lambda image: f"answer:{truth[image]}") as api:
        # Alternate the scripted images between the groups (majority 0, 1, ..., minority 10, 11, ...).
        chosen = [digests[(i % 2) * PER_GROUP + i // 2] for i in range(scripted)]
        for digest in chosen:
            api.script(digest, *script)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{api.url}/v1")
        result = pytester.runpytest_subprocess(
            "fairness_tests",
            f"--fairness-dataset=manifest:{manifest}?name=faces",
            "--fairness-model=openai:gpt-fake",
            "--fairness-concurrency=8",
            "--fairness-max-retries=1",
            # A hung request is given up after 2 s; elsewhere a slow answer on a loaded machine is no fault.
            f"--fairness-timeout={2 if 'hang' in script else 30}",
            "-p",
            "no:cacheprovider",
        )
        calls = list(api.calls)
    return result, calls, chosen, digests


@pytest.mark.parametrize(
    ("script", "scripted", "errors", "refused", "unparseable", "limit", "code"),
    [pytest.param(*row[1:], id=row[0]) for row in MIXES],
)
def test_each_fault_mix_ends_as_its_script_implies(
    pytester, monkeypatch, script, scripted, errors, refused, unparseable, limit, code
):
    result, calls, chosen, digests = _run(pytester, monkeypatch, script, scripted, limit)
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert result.ret == code, output[-3000:]

    # Requests: every image at least once; a scripted image as many times as its faults allow.
    transient = script[0].split(":")[0] in {"429", "500", "503", "hang", "reset", "truncated", "html", "error200"}
    per_scripted = TWICE if transient else 1
    asked = {d: sum(1 for c in calls if c.image == d) for d in digests}
    assert {d: asked[d] for d in chosen} == dict.fromkeys(chosen, per_scripted)
    assert all(asked[d] == 1 for d in digests if d not in chosen)
    if code:
        result.stderr.fnmatch_lines([f"ERROR: model 'gpt-fake' left {errors} of 20 samples*not evaluated*"])
        assert not (pytester.path / "reports" / "fairness.json").exists()
        return
    report = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    facts = report["run"]
    groups = facts["not_evaluated"]["gpt-fake"]["faces"]["group"]
    chosen_groups = ["majority" if digests.index(d) < PER_GROUP else "minority" for d in chosen]
    assert groups == {g: errors and chosen_groups.count(g) for g in ("majority", "minority")}
    usage = facts["usage"]["gpt-fake"]
    assert (usage.get("refused", 0), usage.get("unparseable", 0)) == (refused, unparseable)
    assert usage["calls"] == len(calls)
