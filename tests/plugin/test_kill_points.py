"""A gate killed at any point resumes to the verdicts an uninterrupted run gives, pays for no answer
twice, and never leaves a report folder that mixes two runs; Ctrl-C leaves the last complete reports.

Each point runs the gate in a subprocess against the fake API with ``hold_after(k)``: k answers go
out, then every request hangs and the gate is killed while waiting (or, for the points after the last
call, killed after a delay while it computes and writes its reports). The oracle for the verdicts is a
run that was never interrupted, on its own cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.models.fake_api import FakeAPI
from tests.plugin.test_fault_mixes import FAIRNESS_TESTS
from tests.plugin.test_not_evaluated import api_study

pytest.importorskip("openai")

PER_GROUP = 10  # 20 images
IMAGES = 2 * PER_GROUP
CONCURRENCY = 2
HELD = list(range(IMAGES))  # k answers, then the rest hang: 20 points spread over every call
# Delays after the last answer went out: statistics, report writing, exit. None is shorter than the
# time a worker needs to store that answer (a kill before it is stored makes a re-run ask once more).
AFTER_CALLS_S = [0.5, 0.8, 1.2, 1.6, 2.2, 3.0]


class Project:
    """A fairness project on disk and the command that runs its gate against one fake server."""

    def __init__(self, root: Path, api: FakeAPI, truth: dict[str, str], manifest: str):
        self.root, self.api, self.truth, self.manifest = root, api, truth, manifest
        self.env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": f"{api.url}/v1",
            "HF_HUB_OFFLINE": "1",
        }

    def command(self, cache: str, reports: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pytest",
            "fairness_tests",
            f"--fairness-dataset=manifest:{self.manifest}?name=faces",
            "--fairness-model=openai:gpt-fake",
            f"--fairness-concurrency={CONCURRENCY}",
            f"--fairness-cache-dir={self.root / cache}",
            f"--fairness-report-dir={self.root / reports}",
            "-p",
            "no:cacheprovider",
        ]

    def start(self, cache: str, reports: str = "reports") -> subprocess.Popen:
        return subprocess.Popen(
            self.command(cache, reports),
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def run(self, cache: str, reports: str = "reports") -> tuple[int, str]:
        done = subprocess.run(
            self.command(cache, reports), cwd=self.root, env=self.env, capture_output=True, timeout=120
        )
        return done.returncode, (done.stdout + done.stderr).decode()


@pytest.fixture
def project(pytester):
    manifest, _, truth = api_study(pytester.path, per_group=PER_GROUP)
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_api.py").write_text(FAIRNESS_TESTS)
    (pytester.path / "thresholds.toml").write_text('[groups]\nintersections = "none"\n')
    with FakeAPI(default=lambda image: f"answer:{truth[image]}") as api:
        yield Project(pytester.path, api, truth, manifest)


def verdicts(report_dir: Path) -> dict[str, tuple[str, float | None]]:
    document = json.loads((report_dir / "fairness.json").read_text())
    return {r["test_id"]: (r["verdict"], r["estimate"]) for r in document["tests"]}


def assert_one_run(report_dir: Path) -> None:
    """Both reports present and from one run (the JSON's creation stamp is on the page), or neither."""
    json_path, html_path = report_dir / "fairness.json", report_dir / "fairness.html"
    assert json_path.exists() == html_path.exists(), sorted(p.name for p in report_dir.iterdir())
    if json_path.exists():
        created = json.loads(json_path.read_text())["run"]["created"]
        assert created in html_path.read_text()


def kill_and_resume(project: Project, point: str, baseline: dict) -> None:
    """Kill a run at ``point`` ('held:K' or 'after:SECONDS'), re-run it, and check what the module promises."""
    api, cache = project.api, f"cache-{point.replace(':', '-')}"
    api.release()
    api.reset_log()
    kind, _, value = point.partition(":")
    if kind == "held":
        api.hold_after(int(value))
    child = project.start(cache)
    try:
        if kind == "held":
            # Killed once every worker that still has work is held: an answer the server sent is then
            # stored (a worker asks again only after storing), and a kill between receiving and storing,
            # which no client can make safe, is not what is measured. The pause covers a worker that
            # has no more work and is storing its last answer.
            busy = min(CONCURRENCY, IMAGES - int(value))
            reached = api.wait_until(lambda a: a.waiting() == busy, timeout_s=60)
            time.sleep(0.3)
        else:
            reached = api.wait_until(lambda a: len(a.completed()) == IMAGES, timeout_s=60)
            time.sleep(float(value))
    finally:
        child.send_signal(signal.SIGKILL)
        output = child.communicate(timeout=30)[0].decode()
    assert reached, f"{point}: the run never got there: {output[-2000:]}"
    assert_one_run(project.root / "reports")  # what the kill left is one run's pair (or the older one)
    answered = {c.image for c in api.completed()}
    api.release()
    api.reset_log()

    code, output = project.run(cache)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    asked_again = [c.image for c in api.calls]
    assert not set(asked_again) & answered, f"{point}: an answer sent before the kill was paid for again"
    assert len(asked_again) == len(set(asked_again)) == len(set(project.truth) - answered)
    assert verdicts(project.root / "reports") == baseline
    assert_one_run(project.root / "reports")


def baseline_of(project: Project) -> dict:
    code, output = project.run("cache-baseline", "reports-baseline")
    assert code == 0, output[-3000:]
    assert project.api.count() == IMAGES
    return verdicts(project.root / "reports-baseline")


def test_a_kill_while_calls_are_held_resumes_to_the_same_verdicts(project):
    kill_and_resume(project, "held:7", baseline_of(project))


@pytest.mark.slow
def test_kills_at_every_point_resume_to_the_same_verdicts(project):
    baseline = baseline_of(project)
    points = [f"held:{k}" for k in HELD] + [f"after:{s}" for s in AFTER_CALLS_S]
    assert len(points) >= 20
    for point in points:
        kill_and_resume(project, point, baseline)


def test_ctrl_c_while_calls_are_held_leaves_the_last_complete_reports(project):
    code, output = project.run("cache-complete")
    assert code == 0, output[-3000:]
    reports = project.root / "reports"
    before = {p.name: p.read_bytes() for p in reports.iterdir()}
    assert {"fairness.json", "fairness.html"} <= set(before)

    project.api.reset_log()
    project.api.hold_after(5)
    child = project.start("cache-interrupted")  # a new cache: the run has to ask again, and is held
    try:
        held = project.api.wait_until(lambda a: a.waiting() >= 1, timeout_s=60)
    finally:
        child.send_signal(signal.SIGINT)
        project.api.release()  # the held requests end, so the interrupted run need not wait out a timeout
        output = child.communicate(timeout=60)[0].decode()
    assert held, output[-2000:]
    assert child.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    after = {p.name: p.read_bytes() for p in reports.iterdir()}
    if after == before:
        return  # the last complete set stays in place
    # Otherwise the interrupted run's reports must say so, at the top of the page and in the JSON.
    document = json.loads(after["fairness.json"])
    assert document["decision"]["partial"] is True, output[-3000:]
    assert b"partial" in after["fairness.html"][:4000].lower()
