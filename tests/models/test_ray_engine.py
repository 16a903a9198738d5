"""Batch-classifier inference sharded over a local Ray instance: the same outcome table as a local run,
every image once even when an actor dies, the cache shared with local runs."""

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_fairness.engines import parse_engine
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.models._base import PredictContext
from fer_fairness.models._batch import BatchModel
from tests.models.fake_api import tiny_dataset

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

LABELS = ["angry", "happy", "neutral"]


@pytest.fixture(scope="module")
def engine():
    """One local Ray instance for the module (started by the engine on first use; it costs seconds)."""
    yield parse_engine("ray?actors=2")
    ray.shutdown()


def brightness(images):
    """Scores from pixel statistics: deterministic, so any two runs must agree exactly."""
    rows = []
    for image in images:
        pixels = np.asarray(image, dtype=np.float64) / 255
        rows.append([pixels.mean(), pixels.std(), 1 - pixels.mean()])
    return np.array(rows)


def pixels_key(image) -> str:
    """An image known by its pixels (what a batch function sees: decoded images, not file names)."""
    return hashlib.sha1(image.convert("RGB").tobytes()).hexdigest()


def keys_of(dataset, rows=slice(None)) -> list[str]:
    return [pixels_key(Image.open(dataset.root / path)) for path in dataset.samples["path"].iloc[rows]]


class DiesOnce:
    """A batch function whose process dies the first time it sees one image (a killed actor)."""

    def __init__(self, flag: Path, victim: str, log: Path):
        self.flag, self.victim, self.log = flag, victim, log

    def __call__(self, images):
        names = [pixels_key(image) for image in images]
        if self.victim in names and not self.flag.exists():
            self.flag.touch()
            os._exit(1)  # the actor's process ends mid-batch, as a crash or a preempted node would
        with self.log.open("a") as log:
            log.writelines(f"{name}\n" for name in names)
        return brightness(images)


def _dataset(tmp_path, n=240):
    rows = [(("anger", "happiness", "neutral")[i % 3], ("A", "B")[i % 2]) for i in range(n)]
    dataset, _digests = tiny_dataset(tmp_path / "images", rows)
    return dataset


def _context(tmp_path, engine=None, cache="cache"):
    return PredictContext(seed=0, cache_dir=tmp_path / cache, progress="off", engine=engine)


def test_a_ray_run_gives_the_local_outcome_table_exactly(tmp_path, engine):
    dataset = _dataset(tmp_path)
    local = BatchModel("m", brightness, labels=LABELS, batch_size=16, version="1").predict(
        dataset, context=_context(tmp_path, cache="local")
    )
    sharded_model = BatchModel("m", brightness, labels=LABELS, batch_size=16, version="1")
    sharded = sharded_model.predict(dataset, context=_context(tmp_path, engine, cache="ray"))
    pd.testing.assert_frame_equal(local, sharded)
    assert sharded_model.usage()["calls"] == len(dataset.samples)
    # the cache it filled is the local engine's: a local re-run asks nothing
    again = BatchModel("m", brightness, labels=LABELS, batch_size=16, version="1")
    pd.testing.assert_frame_equal(again.predict(dataset, context=_context(tmp_path, cache="ray")), local)
    assert again.usage() == {"calls": 0, "cache_hits": len(dataset.samples)}


def test_an_actor_that_dies_is_replaced_and_every_image_is_answered_once(tmp_path, engine):
    dataset = _dataset(tmp_path)
    log = tmp_path / "answered.log"
    victim = keys_of(dataset)[100]
    model = BatchModel("m", DiesOnce(tmp_path / "died", victim, log), labels=LABELS, batch_size=16, version="1")
    table = model.predict(dataset, context=_context(tmp_path, engine))
    assert (tmp_path / "died").exists(), "the actor was never killed: the test proves nothing"
    answered = log.read_text().split()
    assert sorted(answered) == sorted(keys_of(dataset))  # every image once: none lost, none twice
    expected = BatchModel("m", brightness, labels=LABELS, batch_size=16).predict(dataset, context=_context(tmp_path))
    pd.testing.assert_frame_equal(table, expected)


def test_a_killed_run_resumes_on_the_cluster_with_only_the_missing_images(tmp_path, engine):
    dataset = _dataset(tmp_path, n=60)
    first = BatchModel("m", brightness, labels=LABELS, batch_size=16, version="1")
    half = type(dataset)(**{**dataset.__dict__, "samples": dataset.samples.iloc[:30].reset_index(drop=True)})
    first.predict(half, context=_context(tmp_path, engine))  # as if the run had died after 30 images
    log = tmp_path / "answered.log"
    second = BatchModel("m", DiesOnce(tmp_path / "never", "none", log), labels=LABELS, batch_size=16, version="1")
    second.predict(dataset, context=_context(tmp_path, engine))
    assert sorted(log.read_text().split()) == sorted(keys_of(dataset, slice(30, None)))
    assert second.usage() == {"calls": 30, "cache_hits": 30}


def test_the_users_error_on_an_actor_is_one_line(tmp_path, engine):
    def broken(images):
        raise ValueError("weights missing on this node")

    model = BatchModel("m", broken, labels=LABELS, batch_size=16)
    with pytest.raises(ModelError) as caught:
        model.predict(_dataset(tmp_path, n=20), context=_context(tmp_path, engine))
    # Ray Data may hand an actor fewer rows than batch_size (a block's end), so the count varies
    assert re.fullmatch(
        r"model 'm' on engine 'ray\?actors=2': model 'm': predict_batch failed on a batch of \d+: "
        r"ValueError: weights missing on this node",
        str(caught.value),
    ), str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ray?actors=0", "option actors must be an integer >= 1"),
        ("ray?workers=2", "unknown option(s) workers"),
        ("local:x", "local takes no address"),
        ("rey", "unknown engine kind 'rey'"),
    ],
)
def test_engine_mistakes_are_one_line(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_engine(text)
    assert message in str(caught.value)


def test_without_the_ray_extra_the_engine_names_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(ConfigError, match=r"needs the 'ray' extra .*pip install 'fer-fairness\[ray\]'"):
        parse_engine("ray")


def test_the_gate_through_the_ray_engine_reports_what_the_local_engine_reports(pytester):
    """--fairness-engine ray end to end: the same count tensors and verdicts as a local run."""
    import json

    from tests.plugin.test_extensions import CONFTEST, _project

    _project(pytester, CONFTEST)
    args = ("--fairness-model=mine", "--fairness-dataset=faces", "-p", "no:cacheprovider")
    local = pytester.runpytest_subprocess(*args, "--fairness-report-dir=local", "--fairness-cache-dir=c1")
    sharded = pytester.runpytest_subprocess(
        *args, "--fairness-engine=ray?actors=2", "--fairness-report-dir=ray", "--fairness-cache-dir=c2"
    )
    assert local.ret == sharded.ret == pytest.ExitCode.TESTS_FAILED, sharded.stdout.str() + sharded.stderr.str()
    reports = {name: json.loads((pytester.path / name / "fairness.json").read_text()) for name in ("local", "ray")}
    assert reports["local"]["run"]["counts"] == reports["ray"]["run"]["counts"]
    verdicts = {name: {(r["test_id"], r["verdict"]) for r in doc["tests"]} for name, doc in reports.items()}
    assert verdicts["local"] == verdicts["ray"]
