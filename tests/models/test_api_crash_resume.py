"""A run killed with SIGKILL mid-way resumes where it stopped: no answered call is paid for twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fer_fairness.models._base import PredictContext
from fer_fairness.models.openai_chat import OpenAIChatModel
from fer_fairness.specs import Spec

from .fake_api import FakeAPI, tiny_dataset

pytest.importorskip("openai")

LABELS = ("anger", "happiness", "neutral")
IMAGES = 12
CONCURRENCY = 2

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import pandas as pd

    from fer_fairness.datasets._table import Dataset
    from fer_fairness.models._base import PredictContext
    from fer_fairness.models.openai_chat import OpenAIChatModel
    from fer_fairness.specs import Spec

    root, cache, concurrency = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    samples = pd.read_csv(root / "samples.csv", dtype=str)
    data = Dataset(name="tiny", root=root, samples=samples, attributes=("group",), emotions=tuple(sys.argv[4:]))
    model = OpenAIChatModel(Spec(text="openai:gpt-test", kind="openai", target="gpt-test"))
    context = PredictContext(seed=0, cache_dir=cache, progress=False, concurrency=concurrency, timeout_s=60)
    model.predict(data, context=context)
    print("finished")
    """
)


def test_a_killed_run_resumes_without_repeating_answered_calls(tmp_path):
    rows = [(LABELS[i % 3], "a" if i % 2 else "b") for i in range(IMAGES)]
    data, digests = tiny_dataset(tmp_path / "images", rows, labels=LABELS)
    data.samples.to_csv(data.root / "samples.csv", index=False)
    truth = {digests[s]: e for s, e in zip(data.samples["sample_id"], data.samples["emotion"], strict=True)}
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cache = tmp_path / "cache"

    with FakeAPI(default=lambda image: f"answer:{truth[image]}") as api:
        api.hold_after(5)  # answer five, then hold every request: the child is killed while waiting
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{api.url}/v1"}
        child = subprocess.Popen(
            [sys.executable, str(script), str(data.root), str(cache), str(CONCURRENCY), *LABELS],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            held = api.wait_until(lambda a: a.waiting() == CONCURRENCY, timeout_s=60)
        finally:
            child.send_signal(signal.SIGKILL)
            _, stderr = child.communicate(timeout=30)
        assert held, f"the child never reached the held requests: {stderr.decode()[-2000:]}"
        assert child.returncode == -signal.SIGKILL
        answered = {c.image for c in api.completed()}
        assert len(answered) >= 5  # a worker only asks again after storing its last answer

        api.release()
        api.reset_log()
        model = OpenAIChatModel(Spec(text="openai:gpt-test", kind="openai", target="gpt-test"), env=env)
        frame = model.predict(
            data, context=PredictContext(seed=0, cache_dir=cache, progress=False, concurrency=CONCURRENCY)
        )
        asked_again = [c.image for c in api.calls]

    assert not set(asked_again) & answered, "a call answered before the kill was paid for again"
    assert sorted(asked_again) == sorted(set(digests.values()) - answered)  # each missing image once
    assert model.usage()["cache_hits"] == len(answered)
    assert list(frame["outcome"]) == list(data.samples["emotion"])
