"""Two runs sharing one cache folder at once pay for each image once; a dead run's claim never blocks.

The runs are separate processes (as two CI jobs or two terminals would be), each building its own
adapter against one local fake API that answers slowly enough for the runs to overlap.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from fer_fairness.models.openai_chat import OpenAIChatModel
from fer_fairness.models.prompts import chat_prompt
from fer_fairness.models.response_cache import FILENAME, ResponseCache, cache_key

from .fake_api import FakeAPI, api_context, chat_model, tiny_dataset

pytest.importorskip("openai")

LABELS = ("anger", "happiness", "neutral")
IMAGES = 30
LATENCY_S = 0.05


@dataclass
class SlowAPI(FakeAPI):
    """The fake API, every request answered after a pause (so two runs are in flight together)."""

    def _handle(self, handler) -> None:
        time.sleep(LATENCY_S)
        super()._handle(handler)


def _adapter(url: str) -> OpenAIChatModel:
    return chat_model(
        OpenAIChatModel, "openai:gpt-test", env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{url}/v1"}
    )


def _run(url: str, dataset, tmp_path: Path, out: Path, barrier) -> None:
    """One run in its own process: wait for the other, predict, write outcomes and usage."""
    adapter = _adapter(url)
    barrier.wait(timeout=60)
    frame = adapter.predict(dataset, context=api_context(tmp_path, concurrency=2))
    frame.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".json").write_text(json.dumps(adapter.usage()))


def _dataset(tmp_path: Path):
    rows = [(LABELS[i % 3], "ab"[i % 2]) for i in range(IMAGES)]
    return tiny_dataset(tmp_path / "images", rows)


def _answers(digests: dict[str, str]) -> dict[str, str]:
    """The label the server gives each image: the oracle both runs must report."""
    return {digest: LABELS[int(digest, 16) % 3] for digest in digests.values()}


def test_two_processes_on_one_cache_ask_for_each_image_once(tmp_path):
    dataset, digests = _dataset(tmp_path)
    answers = _answers(digests)
    spawn = multiprocessing.get_context("spawn")  # no fork of a process running the server's threads
    barrier = spawn.Barrier(2)
    with SlowAPI(default=lambda image: f"answer:{answers[image]}") as api:
        runs = [
            spawn.Process(target=_run, args=(api.url, dataset, tmp_path, tmp_path / f"run{i}", barrier))
            for i in range(2)
        ]
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=120)
        assert [run.exitcode for run in runs] == [0, 0]
        seen = [call.image for call in api.calls]
    assert sorted(seen) == sorted(digests.values())  # every image asked, none twice
    frames = [pd.read_csv(tmp_path / f"run{i}.csv", dtype=str) for i in range(2)]
    expected = {sample_id: answers[digest] for sample_id, digest in digests.items()}
    for frame in frames:
        assert dict(zip(frame["sample_id"], frame["outcome"], strict=True)) == expected
    pd.testing.assert_frame_equal(frames[0], frames[1])
    usages = [json.loads((tmp_path / f"run{i}.json").read_text()) for i in range(2)]
    assert sum(usage["calls"] for usage in usages) == IMAGES
    assert sum(usage["cache_hits"] for usage in usages) == IMAGES  # what one paid for, the other read
    with sqlite3.connect(tmp_path / "cache" / FILENAME) as db:
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # nothing left claimed


def test_claims_of_a_killed_run_are_taken_over_not_waited_on(tmp_path):
    """A run SIGKILLed while holding claims, and one on another host whose lease ran out: both lapse."""
    dataset, digests = _dataset(tmp_path)
    answers = _answers(digests)
    cache_dir = tmp_path / "cache"
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with FakeAPI(default=lambda image: f"answer:{answers[image]}") as api:
        adapter = _adapter(api.url)
        labels = tuple(dataset.emotions)
        settings = adapter.settings(labels)
        keys = [
            cache_key(model=adapter.model_id, inputs={"image": digest}, prompt=chat_prompt(labels), settings=settings)
            for digest in digests.values()
        ]
        ResponseCache.in_dir(cache_dir).close()  # the file, with its claims table
        now = time.time()
        with sqlite3.connect(cache_dir / FILENAME) as db:
            for i, key in enumerate(keys):
                # Half held by a process of this host that is then killed (its lease still an hour
                # long), half by another host's run whose lease ran out a second ago.
                row = (key, "killed", socket.gethostname(), killed.pid, now + 3600) if i % 2 else None
                row = row or (key, "elsewhere", "another-host", 1, now - 1)
                db.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?)", row)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        started = time.monotonic()
        frame = adapter.predict(dataset, context=api_context(tmp_path))
        elapsed = time.monotonic() - started
        assert api.count() == IMAGES
    assert elapsed < 20  # taken over at once, not after the hour-long lease
    expected = {sample_id: answers[digest] for sample_id, digest in digests.items()}
    assert dict(zip(frame["sample_id"], frame["outcome"], strict=True)) == expected


def test_a_live_claim_is_waited_for_and_its_answer_read(tmp_path):
    path = tmp_path / FILENAME
    with ResponseCache(path, lease_s=0.3) as first, ResponseCache(path, lease_s=0.3) as second:
        assert first.claim("k") == "mine"
        assert first.claim("k") == "mine"  # a retry under one's own claim
        time.sleep(1.0)  # three leases: renewed meanwhile, so still held
        assert second.claim("k") == "held"
        first.put("k", {"answer": 1}, model="m")
        first.release("k")
        assert second.claim("k") == "answered"
        assert first.claim("j") == "mine"
        first.release("j")  # a failed request: the other run may try
        assert second.claim("j") == "mine"
        assert first.claim("j") == "held"


def test_closing_a_cache_releases_its_claims(tmp_path):
    path = tmp_path / FILENAME
    with ResponseCache(path) as second:
        with ResponseCache(path) as first:
            assert first.claim("k") == "mine"
            assert second.claim("k") == "held"
        assert second.claim("k") == "mine"  # the first run stopped early (budget, error) and let go


def _open_at_once(path, barrier, failures):
    barrier.wait()
    try:
        ResponseCache(path).close()
    except Exception as error:  # the failure the test looks for, reported to the parent
        failures.put(f"{type(error).__name__}: {error}")


def test_runs_opening_a_new_cache_at_the_same_instant_all_open_it(tmp_path):
    """Two runs starting together on an empty cache folder both switch the new file to WAL; SQLite
    answers one of them "database is locked" at once. Each open must wait its turn, never fail."""
    spawn = multiprocessing.get_context("spawn")
    failures = spawn.Queue()
    for round_ in range(4):
        path = tmp_path / f"round{round_}" / FILENAME
        barrier = spawn.Barrier(6)
        openers = [spawn.Process(target=_open_at_once, args=(path, barrier, failures)) for _ in range(6)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=120)
        assert [opener.exitcode for opener in openers] == [0] * 6
    problems = []
    while not failures.empty():
        problems.append(failures.get())
    assert problems == []
