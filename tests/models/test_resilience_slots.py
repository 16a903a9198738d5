"""A request waiting out its Retry-After frees its worker: checked at the local server (what it saw
arrive, in what order, how many at once) and at the runner with an injected clock."""

from __future__ import annotations

import random
import threading
import time

import pytest

from fer_fairness.errors import BudgetExhausted
from fer_fairness.models.openai_chat import OpenAIChatModel
from fer_fairness.models.resilience import Backoff, Reply, Runner, TransientError, Usage

from .fake_api import FakeAPI, api_context, parse_spec, tiny_dataset

pytest.importorskip("openai")


class _CallLog(list):
    """FakeAPI's call log, also remembering in each serving thread the call it logged last."""

    def __init__(self, local: threading.local):
        super().__init__()
        self.local = local

    def append(self, call) -> None:
        self.local.call = call
        super().append(call)


class TimedAPI(FakeAPI):
    """FakeAPI that also logs when each request arrived and was answered, and the most in flight at once."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._local = threading.local()
        self.calls = _CallLog(self._local)
        self.timeline: list[tuple[str, float, float]] = []  # image digest, arrived, answered
        self.in_flight = 0
        self.most_in_flight = 0
        self._count_lock = threading.Lock()

    def _handle(self, handler) -> None:
        with self._count_lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        arrived = time.monotonic()
        self._local.call = None
        try:
            super()._handle(handler)
        finally:
            image = self._local.call.image if self._local.call is not None else "?"
            with self._count_lock:
                self.in_flight -= 1
                self.timeline.append((image, arrived, time.monotonic()))

    def arrivals(self) -> list[tuple[str, float, float]]:
        with self._count_lock:
            return sorted(self.timeline, key=lambda entry: entry[1])


def openai_model(api: FakeAPI, *, real_sleep: bool) -> OpenAIChatModel:
    return OpenAIChatModel(
        parse_spec("openai:gpt-test"),
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{api.url}/v1"},
        backoff=Backoff(base_s=0.05, cap_s=0.2),
        sleep=time.sleep if real_sleep else (lambda seconds: None),
        rng=random.Random(0),
    )


def test_another_image_is_sent_while_one_waits_its_retry_after(tmp_path):
    data, digests = tiny_dataset(tmp_path / "images", [("neutral", "a")] * 3)
    first, second, third = digests.values()
    with TimedAPI(latency_s=0.01) as api:
        api.script(first, "429:1", "answer:anger")
        frame = openai_model(api, real_sleep=True).predict(data, context=api_context(tmp_path, concurrency=1))
        timeline = api.arrivals()
    order = [image for image, _, _ in timeline]
    assert list(frame["outcome"]) == ["anger", "neutral", "neutral"]
    # One slot: the old runner sent [first, first, second, third]; now the others go while first waits.
    assert order == [first, second, third, first]
    answered_429 = timeline[0][2]
    retried = timeline[3][1]
    assert retried - answered_429 >= 1.0  # Retry-After honoured, never earlier


def test_retry_after_is_honoured_per_request_with_slots_shared(tmp_path):
    data, digests = tiny_dataset(tmp_path / "images", [("neutral", "a")] * 8)
    images = list(digests.values())
    waits = {images[0]: 0.3, images[3]: 0.5, images[5]: 0.2}
    with TimedAPI(latency_s=0.01) as api:
        for image, seconds in waits.items():
            api.script(image, f"429:{seconds}")
        openai_model(api, real_sleep=True).predict(data, context=api_context(tmp_path, concurrency=2))
        timeline = api.arrivals()
    for image, seconds in waits.items():
        visits = [(arrived, answered) for seen, arrived, answered in timeline if seen == image]
        assert len(visits) == 2
        assert visits[1][0] - visits[0][1] >= seconds


def test_concurrency_never_exceeds_the_limit_in_a_429_storm(tmp_path):
    data, digests = tiny_dataset(tmp_path / "images", [("neutral", "a")] * 24)
    with TimedAPI(latency_s=0.03) as api:
        for image in digests.values():
            api.script(image, "429:0", "429:0", "answer:anger")
        frame = openai_model(api, real_sleep=False).predict(
            data, context=api_context(tmp_path, concurrency=3, max_retries=2)
        )
        assert api.count() == 72
    assert set(frame["outcome"]) == {"anger"}
    assert api.most_in_flight == 3  # reached, never passed


# -- the runner with an injected clock: every wait is recorded, nothing sleeps ----------------------


class VirtualTime:
    """A clock that only moves when someone sleeps (one worker: no races on it)."""

    def __init__(self):
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def runner(time_: VirtualTime, tmp_path, **limits) -> Runner:
    return Runner(
        name="m",
        context=api_context(tmp_path, **limits),
        usage=Usage(),
        backoff=Backoff(base_s=1.0, cap_s=8.0),
        sleep=time_.sleep,
        clock=time_.clock,
        rng=random.Random(0),
    )


def test_a_429_storm_stops_new_jobs_once_twice_the_slots_are_open(tmp_path):
    time_ = VirtualTime()
    log: list[tuple[str, int, float]] = []
    seen: dict[str, int] = {}

    def call(job, timeout_s):
        seen[job] = seen.get(job, 0) + 1
        log.append((job, seen[job], time_.now))
        if seen[job] == 1:
            raise TransientError("429", kind="rate_limit", headers={"Retry-After": "5"})
        return Reply(payload=job)

    jobs = [f"j{i}" for i in range(10)]
    answered: list = []
    runner(time_, tmp_path, concurrency=1, max_retries=3).run(
        jobs,
        call=call,
        on_reply=lambda job, reply: answered.append(job),
        on_failure=lambda job, failure: None,
        desc="storm",
    )
    assert sorted(answered) == jobs
    first_retry = next(i for i, (_, attempt, _) in enumerate(log) if attempt == 2)
    assert first_retry == 2  # one slot: two jobs open (one waiting, one sent), then only retries
    firsts = {job: at for job, attempt, at in log if attempt == 1}
    for job, attempt, at in log:
        if attempt == 2:
            assert at - firsts[job] >= 5.0  # each retry after its own Retry-After


def test_past_the_budget_a_waiting_retry_is_left_for_the_next_run(tmp_path):
    time_ = VirtualTime()
    attempts: dict[str, int] = {}

    def call(job, timeout_s):
        attempts[job] = attempts.get(job, 0) + 1
        if job == "a" and attempts[job] == 1:
            raise TransientError("429", kind="rate_limit", headers={"Retry-After": "5"})
        return Reply(payload=job, tokens=10)

    answered: list = []
    with pytest.raises(BudgetExhausted, match=r"2 of 4 calls done and cached, 2 left"):
        runner(time_, tmp_path, concurrency=1, budget_tokens=15).run(
            list("abcd"), call=call, on_reply=lambda job, reply: answered.append(job), on_failure=None, desc="t"
        )
    # b then c spend the budget while a waits; a's retry and d are never sent.
    assert answered == ["b", "c"] and attempts == {"a": 1, "b": 1, "c": 1}
