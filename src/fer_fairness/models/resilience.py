"""Calling a paid, flaky API many times: bounded concurrency, timeouts, retries, a token budget.

``Runner.run`` sends one request per job from ``context.concurrency`` threads. Each request gets
``context.timeout_s``; a rate limit (429), a server error (5xx), a timeout or a dropped connection
is retried up to ``context.max_retries`` times with exponential backoff and full jitter, waiting at
least as long as a ``Retry-After`` header asks. Every answer is handed to ``on_reply`` (which stores
it) the moment it arrives; a request that still fails goes to ``on_failure`` (and is never stored).

A request waiting to retry does not hold its thread: it is queued with the time it is due, and the
thread sends other requests meanwhile (a retry that is due goes first; a thread with nothing new to
send waits out the oldest retry). At most ``2 x concurrency`` jobs are open (in flight or waiting),
so a 429 storm still slows the whole client: once half of them wait, only retries are sent.

Past ``context.budget_tokens`` no request starts, new or retry; the requests in flight finish and
are stored, then ``BudgetExhausted`` says how far the run got (retries still waiting are among what
is left). Requests in flight when the budget runs out may overshoot it by at most ``concurrency``
answers.

Sleep, clock and random source are injected, so backoff is tested without waiting.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from fer_fairness.errors import BudgetExhausted
from fer_fairness.labels import NON_ANSWERS
from fer_fairness.models._base import PredictContext
from fer_fairness.progress import bar as progress_bar

Job = TypeVar("Job")

# Counters every API adapter reports (``usage()``), always present so summaries line up.
USAGE_KEYS: Final = ("calls", "cache_hits", "retries", "tokens", "answered", *NON_ANSWERS)
_END: Final = object()
# Jobs started and not yet answered or failed, per worker: the ones in flight plus as many waiting to
# retry. A 429 storm fills the waiting half, and then no new job starts until retries drain it.
_OPEN_PER_SLOT: Final = 2


class TransientError(Exception):
    """A failure worth retrying: rate limited, server error, timeout, connection dropped, or a gateway
    that answered HTTP 200 with an error page instead of the model's response.

    ``kind`` is one of "rate_limit", "server", "timeout", "connection", "gateway"; ``headers`` are the response
    headers where there was a response (for Retry-After).
    """

    def __init__(self, message: str, *, kind: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.kind = kind
        self.headers = dict(headers or {})


class PermanentError(Exception):
    """A failure retrying will not fix (a rejected request): the sample's outcome is ``error``."""

    def __init__(self, message: str, *, kind: str = "rejected"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Reply:
    """An answer from the model: ``payload`` is stored as is (JSON value or bytes)."""

    payload: Any
    tokens: int = 0


@dataclass(frozen=True)
class Failure:
    """A request that got no answer after its retries (never cached)."""

    kind: str
    message: str
    attempts: int


@dataclass(frozen=True, kw_only=True)
class _Turn(Generic[Job]):
    """A job's next request: ``retries`` made so far, not to be sent before ``due`` (None: at once)."""

    job: Job
    retries: int
    due: float | None


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Retry ``r`` (0-based) waits uniform(0, min(cap, base * 2**r)) seconds (full jitter).

    A Retry-After header wins when it asks for longer: the wait is then Retry-After plus
    uniform(0, base), so clients told the same instant do not all return at once. Retry-After is
    capped at ``max_retry_after_s``.
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    max_retry_after_s: float = 600.0

    def delay(self, retry: int, *, retry_after_s: float | None, rng: random.Random) -> float:
        jittered = rng.uniform(0.0, min(self.cap_s, self.base_s * 2**retry))
        if retry_after_s is None:
            return jittered
        honoured = min(max(retry_after_s, 0.0), self.max_retry_after_s) + rng.uniform(0.0, self.base_s)
        return max(honoured, jittered)


def retry_after_seconds(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds a server asked us to wait: ``retry-after-ms``, or ``Retry-After`` (seconds or HTTP date)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(float(lowered["retry-after-ms"]) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


class Usage:
    """Thread-safe counters behind ``usage()``: calls, cache hits, retries, tokens, outcomes by kind."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            extra = sorted(set(self._counts) - set(USAGE_KEYS))
            return {name: int(self._counts[name]) for name in (*USAGE_KEYS, *extra)}


class Runner(Generic[Job]):
    """Sends jobs through ``call`` with the limits of a ``PredictContext``; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        context: PredictContext,
        usage: Usage,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        resume_hint: str = "re-run with a larger --fairness-budget-tokens",
    ):
        if context.concurrency < 1 or context.max_retries < 0 or context.timeout_s <= 0:
            raise ValueError(
                "concurrency must be >= 1, max_retries >= 0 and timeout_s > 0; "
                f"got {context.concurrency}, {context.max_retries}, {context.timeout_s}"
            )
        self.name = name
        self.context = context
        self.usage = usage
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random(context.seed)
        self._rng_lock = threading.Lock()
        self.resume_hint = resume_hint

    def budget_left(self) -> bool:
        budget = self.context.budget_tokens
        return budget is None or self.usage["tokens"] < budget

    def run(
        self,
        jobs: Sequence[Job],
        *,
        call: Callable[[Job, float], Reply],
        on_reply: Callable[[Job, Reply], None],
        on_failure: Callable[[Job, Failure], None],
        desc: str,
    ) -> None:
        """Every job answered (``on_reply``) or failed (``on_failure``), or ``BudgetExhausted``.

        ``call`` raises TransientError (retried), PermanentError (fails the job) or anything else
        (stops the run: no new request starts, the ones in flight finish, then it is re-raised).
        """
        if not jobs:
            return
        pending: Iterator[Job] = iter(jobs)
        lock = threading.Lock()
        waiting: deque[_Turn[Job]] = deque()  # in the order they failed
        state = {"done": 0, "open": 0, "drained": False, "exhausted": False, "stop": False}
        errors: list[BaseException] = []
        bar = progress_bar(len(jobs), desc, self.context.progress, unit="call")
        most_open = _OPEN_PER_SLOT * self.context.concurrency

        def may_send() -> bool:  # called with the lock held
            if state["stop"]:
                return False
            if not self.budget_left():
                state["exhausted"] = True
                return False
            return True

        def next_turn() -> _Turn[Job] | None:
            with lock:
                if not may_send():
                    return None
                if waiting and waiting[0].due <= self._clock():
                    return waiting.popleft()
                if not state["drained"] and state["open"] < most_open:
                    job = next(pending, _END)
                    if job is not _END:
                        state["open"] += 1
                        return _Turn(job=job, retries=0, due=None)
                    state["drained"] = True
                # Nothing new may start: wait out the oldest retry. With ``most_open`` at twice the
                # workers, open jobs beyond the ones workers hold are in ``waiting``, so none is lost
                # by a worker leaving here: the rest are held by workers that will see them through.
                return waiting.popleft() if waiting else None

        def worker() -> None:
            try:
                while (turn := next_turn()) is not None:
                    if turn.due is not None:
                        # Also sleep(0) for a retry already due: every retry gets exactly one wait.
                        self._sleep(max(0.0, turn.due - self._clock()))
                        with lock:
                            if not may_send():  # stopped or out of budget meanwhile: left for a re-run
                                return
                    outcome = self._attempt(turn, call)
                    if isinstance(outcome, _Turn):
                        with lock:
                            waiting.append(outcome)
                        continue
                    if isinstance(outcome, Reply):
                        on_reply(turn.job, outcome)
                    else:
                        on_failure(turn.job, outcome)
                    with lock:
                        state["done"] += 1
                        state["open"] -= 1
                        bar.update(1)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread below
                with lock:
                    state["stop"] = True
                    errors.append(error)

        workers = min(self.context.concurrency, len(jobs))
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fer-api") as pool:
                futures = [pool.submit(worker) for _ in range(workers)]
                for future in futures:
                    future.result()
        finally:
            state["stop"] = True
            bar.close()
        if errors:
            raise errors[0]
        left = len(jobs) - state["done"]
        if state["exhausted"] and left:
            raise BudgetExhausted(
                f"{self.name}: token budget of {self.context.budget_tokens} reached ({self.usage['tokens']} tokens "
                f"used) during {desc}; {state['done']} of {len(jobs)} calls done and cached, {left} left; "
                f"{self.resume_hint} to send only those {left} (cached answers cost nothing)"
            )

    def _attempt(self, turn: _Turn[Job], call: Callable[[Job, float], Reply]) -> Reply | Failure | _Turn[Job]:
        """One request: its reply, its failure, or the retry to schedule (with the time it is due)."""
        self.usage.add("calls")
        try:
            reply = call(turn.job, self.context.timeout_s)
        except TransientError as error:
            if turn.retries >= self.context.max_retries:
                return Failure(kind=error.kind, message=str(error), attempts=turn.retries + 1)
            now = self._clock()
            retry_after = retry_after_seconds(error.headers, now=now)
            with self._rng_lock:
                delay = self.backoff.delay(turn.retries, retry_after_s=retry_after, rng=self._rng)
            self.usage.add("retries")
            return _Turn(job=turn.job, retries=turn.retries + 1, due=now + delay)
        except PermanentError as error:
            return Failure(kind=error.kind, message=str(error), attempts=turn.retries + 1)
        self.usage.add("tokens", reply.tokens)
        return reply
