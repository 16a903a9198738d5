"""clip-zeroshot, clip-probe embeddings and paligemma on a local Ray instance: each gives the outcome
table a local run gives, through the same caches, and an actor that dies mid-batch loses no image.

The tiny open_clip model and the tiny PaliGemma are the ones their adapter tests build; the local
engine's answer (the adapter run in this process) is the oracle.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytest.importorskip("open_clip")
pytest.importorskip("transformers")

from fer_fairness.engines import parse_engine  # noqa: E402
from fer_fairness.models import MODELS  # noqa: E402
from fer_fairness.models._base import PredictContext  # noqa: E402
from fer_fairness.models.paligemma import PaliGemma  # noqa: E402
from tests.models import test_clip  # noqa: E402
from tests.models.test_paligemma import save_tiny_paligemma  # noqa: E402

# the tiny CLIP's weights and 140 faces of 20 subjects (the probe's folds need them), built by test_clip
weights, faces, ARCH = test_clip.weights, test_clip.faces, test_clip.ARCH


@pytest.fixture(scope="module")
def engine():
    yield parse_engine("ray?actors=2")
    ray.shutdown()


def build(text: str):
    return MODELS.build(MODELS.parse(text))


def run(model, dataset, cache: Path, engine=None, progress="off") -> pd.DataFrame:
    return model.predict(dataset, context=PredictContext(seed=0, cache_dir=cache, progress=progress, engine=engine))


def test_clip_zeroshot_and_probe_on_ray_give_the_local_tables_and_fill_the_local_cache(
    weights,
    faces,
    tmp_path,
    engine,
):
    # the folder with an open_clip config: an actor rebuilds it from the path alone (the tiny arch is
    # registered in this process only)
    spec = f"{ARCH}@{weights['config-folder']}?batch_size=16"
    local = {kind: run(build(f"{kind}:{spec}"), faces, tmp_path / "local") for kind in ("clip-zeroshot", "clip-probe")}
    zeroshot = build(f"clip-zeroshot:{spec}")
    passes = []
    zeroshot.embedder.embed = lambda paths, progress: passes.append(len(paths))  # the driver must not embed
    pd.testing.assert_frame_equal(
        run(zeroshot, faces, tmp_path / "ray", engine), local["clip-zeroshot"], check_exact=True
    )
    assert passes == []
    # the probe finds the embeddings the Ray run stored, and fits on the driver
    probe = build(f"clip-probe:{spec}")
    probe.embedder.embed = lambda paths, progress: passes.append(len(paths))
    pd.testing.assert_frame_equal(run(probe, faces, tmp_path / "ray", engine), local["clip-probe"], check_exact=True)
    assert passes == []
    embeddings = sorted(p.name for p in (tmp_path / "ray" / "embeddings").glob("*.npy"))
    assert embeddings == sorted(p.name for p in (tmp_path / "local" / "embeddings").glob("*.npy"))


@pytest.fixture(scope="module")
def paligemma_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paligemma") / "random"
    save_tiny_paligemma(folder)
    return folder


@pytest.mark.slow
def test_paligemma_on_ray_gives_the_local_table_and_answers_from_the_local_cache(
    paligemma_folder,
    faces,
    tmp_path,
    engine,
    monkeypatch,
):
    dataset = _first(faces, 28)
    local = run(build(f"paligemma:{paligemma_folder}?batch_size=4"), dataset, tmp_path / "local")
    sharded_model = build(f"paligemma:{paligemma_folder}?batch_size=4")
    monkeypatch.setattr(sharded_model, "generate", _never)  # the driver must not generate
    sharded = run(sharded_model, dataset, tmp_path / "ray", engine)
    pd.testing.assert_frame_equal(sharded, local, check_exact=True)
    assert sharded_model.usage()["calls"] == len(dataset.samples)
    again = build(f"paligemma:{paligemma_folder}?batch_size=4")
    monkeypatch.setattr(again, "generate", _never)
    pd.testing.assert_frame_equal(run(again, dataset, tmp_path / "ray"), local, check_exact=True)
    assert again.usage()["cache_hits"] == len(dataset.samples)


class DiesOnce(PaliGemma):
    """PaliGemma whose actor process dies the first time it is asked about one image; shipped to the
    actors pickled (no spec to rebuild from), and logging every image it answers."""

    def __init__(self, spec, *, flag: Path, victim: str, log: Path):
        super().__init__(spec)
        self.spec_text = None
        self.flag, self.victim, self.log = flag, victim, log

    def _call(self, paths, prompt):
        names = [Path(p).name for p in paths]
        if self.victim in names and not self.flag.exists():
            self.flag.touch()
            os._exit(1)  # the actor's process ends mid-batch, as a crash or a preempted node would
        with self.log.open("a") as log:
            log.writelines(f"{name}\n" for name in names)
        return super()._call(paths, prompt)


@pytest.mark.slow
def test_a_paligemma_actor_that_dies_is_restarted_every_image_answered_once_and_shown(
    paligemma_folder,
    faces,
    tmp_path,
    engine,
    capsys,
):
    dataset = _first(faces, 28)
    names = [Path(p).name for p in dataset.samples["path"]]
    assert len(set(names)) == len(names)
    log = tmp_path / "answered.log"
    model = DiesOnce(
        MODELS.parse(f"paligemma:{paligemma_folder}?batch_size=4"), flag=tmp_path / "died", victim=names[13], log=log
    )
    table = run(model, dataset, tmp_path / "ray", engine, progress="lines")
    assert (tmp_path / "died").exists(), "the actor was never killed: the test proves nothing"
    assert sorted(log.read_text().split()) == sorted(names)  # every image once: none lost, none twice
    local = run(build(f"paligemma:{paligemma_folder}?batch_size=4"), dataset, tmp_path / "local")
    pd.testing.assert_frame_equal(table, local, check_exact=True)
    assert "died and restarted" in capsys.readouterr().err


def _first(dataset, n):
    return type(dataset)(**{**dataset.__dict__, "samples": dataset.samples.iloc[:n].reset_index(drop=True)})


def _never(images, prompt):
    raise AssertionError("generated on the driver")
