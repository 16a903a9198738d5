"""Retries, backoff, Retry-After, concurrency bound and token budget, with an injected clock: no sleeping."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from fer_fairness.errors import BudgetExhausted, ModelError
from fer_fairness.models._base import PredictContext
from fer_fairness.models.resilience import (
    USAGE_KEYS,
    Backoff,
    Failure,
    PermanentError,
    Reply,
    Runner,
    TransientError,
    Usage,
    retry_after_seconds,
)


def context(tmp_path, **limits) -> PredictContext:
    return PredictContext(seed=0, cache_dir=tmp_path, progress=False, **limits)


class Recorder:
    """Collects replies and failures, and the sleeps the runner asked for."""

    def __init__(self):
        self.replies: dict = {}
        self.failures: dict = {}
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def on_reply(self, job, reply):
        with self.lock:
            self.replies[job] = reply

    def on_failure(self, job, failure):
        with self.lock:
            self.failures[job] = failure

    def runner(self, tmp_path, usage=None, **limits) -> Runner:
        return Runner(
            name="m",
            context=context(tmp_path, **limits),
            usage=usage or Usage(),
            backoff=Backoff(base_s=1.0, cap_s=8.0),
            sleep=self.sleeps.append,
            clock=lambda: 1_000_000.0,
            rng=random.Random(0),
        )

    def run(self, runner, jobs, call):
        runner.run(jobs, call=call, on_reply=self.on_reply, on_failure=self.on_failure, desc="test")


def scripted(script: dict):
    """A call that raises or answers from a per-job list, and counts attempts."""
    attempts: dict = {}
    lock = threading.Lock()

    def call(job, timeout_s):
        with lock:
            attempts[job] = attempts.get(job, 0) + 1
            step = script.get(job, ["ok"])[min(attempts[job], len(script.get(job, ["ok"]))) - 1]
        if isinstance(step, Exception):
            raise step
        return Reply(payload={"job": job}, tokens=10)

    call.attempts = attempts
    return call


def test_full_jitter_backoff_grows_and_is_capped():
    backoff = Backoff(base_s=1.0, cap_s=8.0)
    rng = random.Random(1)
    for retry in range(8):
        bound = min(8.0, 2**retry)
        delays = [backoff.delay(retry, retry_after_s=None, rng=rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > 0.8 * bound  # the whole range is used: full jitter, not a fixed step


def test_retry_after_is_honoured_with_a_little_jitter():
    backoff = Backoff(base_s=1.0, cap_s=8.0, max_retry_after_s=30)
    rng = random.Random(2)
    delays = [backoff.delay(0, retry_after_s=7.0, rng=rng) for _ in range(100)]
    assert all(7.0 <= d <= 8.0 for d in delays) and len(set(delays)) > 1
    assert 30.0 <= backoff.delay(0, retry_after_s=3600, rng=rng) <= 31.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "7"}, 0.25),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(1_000_030, UTC), usegmt=True)}, 30.0),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(999_000, UTC), usegmt=True)}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(headers, expected):
    assert retry_after_seconds(headers, now=1_000_000.0) == expected


def test_transient_errors_are_retried_with_backoff(tmp_path):
    recorder = Recorder()
    usage = Usage()
    call = scripted(
        {
            "a": [TransientError("429", kind="rate_limit", headers={"Retry-After": "7"}), "ok"],
            "b": [TransientError("500", kind="server"), TransientError("t", kind="timeout"), "ok"],
            "c": ["ok"],
        }
    )
    recorder.run(recorder.runner(tmp_path, usage, max_retries=3, concurrency=1), ["a", "b", "c"], call)
    assert set(recorder.replies) == {"a", "b", "c"} and not recorder.failures
    assert call.attempts == {"a": 2, "b": 3, "c": 1}
    assert usage.as_dict() == {**dict.fromkeys(USAGE_KEYS, 0), "calls": 6, "retries": 3, "tokens": 30}
    assert 7.0 <= recorder.sleeps[0] <= 8.0  # Retry-After: 7 honoured
    assert 0 <= recorder.sleeps[1] <= 1.0 and 0 <= recorder.sleeps[2] <= 2.0  # retries 0 and 1 of job b


def test_retries_stop_at_max_retries(tmp_path):
    recorder = Recorder()
    usage = Usage()
    call = scripted({"a": [TransientError("boom", kind="server")] * 10})
    recorder.run(recorder.runner(tmp_path, usage, max_retries=2), ["a"], call)
    assert recorder.failures == {"a": Failure(kind="server", message="boom", attempts=3)}
    assert usage["calls"] == 3 and usage["retries"] == 2 and len(recorder.sleeps) == 2


def test_permanent_errors_are_not_retried(tmp_path):
    recorder = Recorder()
    call = scripted({"a": [PermanentError("HTTP 400: bad image")]})
    recorder.run(recorder.runner(tmp_path, max_retries=5), ["a", "b"], call)
    assert recorder.failures["a"] == Failure(kind="rejected", message="HTTP 400: bad image", attempts=1)
    assert call.attempts == {"a": 1, "b": 1} and recorder.sleeps == []


def test_zero_retries(tmp_path):
    recorder = Recorder()
    call = scripted({"a": [TransientError("t", kind="timeout"), "ok"]})
    recorder.run(recorder.runner(tmp_path, max_retries=0), ["a"], call)
    assert recorder.failures["a"].attempts == 1 and recorder.sleeps == []


def test_concurrency_is_bounded(tmp_path):
    in_flight, peak = 0, 0
    lock = threading.Lock()
    first_three = threading.Barrier(3, timeout=5)  # breaks (and fails the test) unless 3 run at once

    def call(job, timeout_s):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        if job < 3:
            first_three.wait()
        time.sleep(0.002)
        with lock:
            in_flight -= 1
        return Reply(payload=job)

    recorder = Recorder()
    recorder.run(recorder.runner(tmp_path, concurrency=3), list(range(24)), call)
    assert len(recorder.replies) == 24
    assert peak == 3


def test_the_timeout_is_handed_to_every_call(tmp_path):
    seen = []
    recorder = Recorder()
    recorder.run(recorder.runner(tmp_path, timeout_s=0.25), ["a", "b"], lambda job, t: seen.append(t) or Reply(job))
    assert seen == [0.25, 0.25]


def test_the_budget_stops_new_calls_and_says_how_to_continue(tmp_path):
    recorder = Recorder()
    usage = Usage()
    runner = recorder.runner(tmp_path, usage, budget_tokens=35, concurrency=1)
    with pytest.raises(BudgetExhausted) as raised:
        recorder.run(runner, list("abcdefgh"), scripted({}))
    assert len(recorder.replies) == 4  # 10 tokens each: 40 >= 35 after the fourth
    assert usage["tokens"] == 40 and usage["calls"] == 4
    assert str(raised.value) == (
        "m: token budget of 35 reached (40 tokens used) during test; 4 of 8 calls done and cached, 4 left; "
        "re-run with a larger --fairness-budget-tokens to send only those 4 (cached answers cost nothing)"
    )
    assert "\n" not in str(raised.value)


def test_a_budget_reached_by_the_last_call_is_not_an_error(tmp_path):
    recorder = Recorder()
    recorder.run(recorder.runner(tmp_path, budget_tokens=20, concurrency=1), ["a", "b"], scripted({}))
    assert len(recorder.replies) == 2


def test_the_budget_overshoots_by_at_most_the_calls_in_flight(tmp_path):
    recorder = Recorder()
    usage = Usage()
    with pytest.raises(BudgetExhausted):
        recorder.run(recorder.runner(tmp_path, usage, budget_tokens=1, concurrency=3), list(range(30)), scripted({}))
    assert 1 <= len(recorder.replies) <= 3 and usage["tokens"] == 10 * len(recorder.replies)


def test_a_fatal_error_stops_the_run_after_calls_in_flight(tmp_path):
    recorder = Recorder()
    call = scripted({"c": [ModelError("m: HTTP 401 from the API, the API key was rejected")]})
    with pytest.raises(ModelError, match="key was rejected"):
        recorder.run(recorder.runner(tmp_path, concurrency=1), list("abcdef"), call)
    assert set(recorder.replies) == {"a", "b"} and "d" not in call.attempts


def test_nothing_to_do(tmp_path):
    recorder = Recorder()
    recorder.run(recorder.runner(tmp_path), [], scripted({}))
    assert recorder.replies == {} and recorder.sleeps == []


def test_invalid_limits_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        Recorder().runner(tmp_path, concurrency=0)


def test_progress_goes_to_stderr(tmp_path, capsys):
    runner = Runner(name="m", context=PredictContext(seed=0, cache_dir=tmp_path, progress=True), usage=Usage())
    runner.run(["a"], call=lambda job, t: Reply(job), on_reply=lambda *a: None, on_failure=lambda *a: None, desc="gpt")
    captured = capsys.readouterr()
    assert captured.out == "" and "gpt" in captured.err
