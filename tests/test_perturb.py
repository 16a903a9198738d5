"""Perturbation sweeps and robustness_gap.

Oracles: direct numpy/PIL computations of each perturbation; the paired difference-in-differences
computed here from the 2x2 tables (Agresti-Min); the planting of a toy model whose answers depend
on how sharp the image is; a counting model for the warm re-run.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.special import ndtr
from scipy.stats import norm

from fer_fairness import pipeline
from fer_fairness.config import CRITERIA, parse_thresholds
from fer_fairness.criteria.robustness import robustness_gap
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.datasets import DATASETS
from fer_fairness.datasets.manifest import load_manifest
from fer_fairness.errors import ConfigError
from fer_fairness.models._batch import BatchModel
from fer_fairness.perturb import parse, perturbed_dataset
from fer_fairness.session import RunState
from fer_fairness.stats.paired import PairedTable

# -- the perturbations, against direct computations --------------------------------------------------


def _ramp() -> Image.Image:
    return Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1)), mode="L")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def test_brightness_scales_every_pixel():
    x = _pixels(_ramp())
    for factor in (0.5, 1.7):
        out = _pixels(parse(f"brightness:{factor}").apply(_ramp()))
        assert np.abs(out - np.clip(x * factor, 0, 255)).max() <= 1  # PIL rounds to whole grey levels


def test_contrast_pulls_every_pixel_towards_the_mean_grey():
    x = _pixels(_ramp())
    mean = round(x.mean())  # PIL's degenerate image: the mean grey, rounded
    out = _pixels(parse("contrast:0.5").apply(_ramp()))
    assert np.abs(out - (mean + 0.5 * (x - mean))).max() <= 1


def test_blur_turns_a_step_into_a_gaussian_edge():
    step = np.zeros((40, 40), dtype=np.uint8)
    step[:, 20:] = 200
    out = _pixels(parse("blur:2").apply(Image.fromarray(step, mode="L")))[20]
    # The ideal blurred step: 200 * Phi((x - 19.5) / sigma); PIL approximates the Gaussian by box passes.
    ideal = 200 * ndtr((np.arange(40) - 19.5) / 2.0)
    assert np.abs(out - ideal)[5:35].max() <= 6
    assert out[:12].max() <= 2 and out[28:].min() >= 198  # far from the edge nothing changes


def test_jpeg_is_a_recompression_at_the_quality_asked(tmp_path):
    rng = np.random.default_rng(0)
    source = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), mode="RGB").save(source)
    target = tmp_path / "out.jpg"
    parse("jpeg:20").write(source, target)
    direct = io.BytesIO()
    Image.open(source).convert("RGB").save(direct, format="JPEG", quality=20)
    assert target.read_bytes() == direct.getvalue()


def test_levels_are_parsed_and_named_canonically():
    assert parse("blur:1.50").name == "blur:1.5"
    assert parse("jpeg:20").name == "jpeg:20"
    for bad in ("sharpen:2", "jpeg:0", "jpeg:96", "jpeg:20.5", "blur:-1", "blur:0", "blur:nan", "blur", 3):
        assert parse(bad) is None, bad


@pytest.mark.parametrize(
    "value",
    [["sharpen:2"], ["jpeg:0"], ["blur:-1"], ["blur:1.5", "blur:1.50"], "blur:1.5"],
    ids=["unknown kind", "jpeg quality 0", "negative radius", "repeated", "not a list"],
)
def test_a_bad_sweep_is_one_config_error_naming_the_key(value):
    with pytest.raises(ConfigError) as caught:
        parse_thresholds({"criteria": {"robustness_gap": {"perturbations": value}}}, source="t.toml")
    message = str(caught.value)
    assert message.startswith("t.toml: 'criteria.robustness_gap.perturbations' must be a list of distinct")
    assert "\n" not in message and repr(value) in message


# -- the statistic, against a direct computation ----------------------------------------------------


def _direct(g: tuple[int, int, int, int], r: tuple[int, int, int, int], confidence: float):
    """drop(g) - drop(r) and its Agresti-Min interval, from (both, clean only, perturbed only, neither)."""
    out = []
    for both, clean_only, perturbed_only, neither in (g, r):
        n = both + clean_only + perturbed_only + neither
        b, c = clean_only + 0.5, perturbed_only + 0.5
        # a drop is clean minus perturbed accuracy: (b - c) / n, with 0.5 added to each of the 4 cells
        variance = (b + c - (b - c) ** 2 / (n + 2)) / (n + 2) ** 2
        out.append(((clean_only - perturbed_only) / n, (b - c) / (n + 2), variance))
    (eg, cg, vg), (er, cr, vr) = out
    half = norm.isf((1 - confidence) / 2) * math.sqrt(vg + vr)
    return eg - er, (cg - cr) - half, (cg - cr) + half


class _Table:
    def __init__(self, perturbed):
        self.perturbed = perturbed


class _Config:
    threshold = 0.05


def test_the_interval_is_the_paired_difference_in_differences():
    g, r = (50, 30, 4, 16), (70, 6, 5, 19)
    paired = {("blur:1.5", "dark"): PairedTable(both=50, baseline_only=30, candidate_only=4, neither=16),
              ("blur:1.5", "light"): PairedTable(both=70, baseline_only=6, candidate_only=5, neither=19)}  # fmt: skip
    measure = robustness_gap(_Table(paired), "dark", "light", "blur:1.5", _Config())
    estimate, low, high = _direct(g, r, 0.99)
    assert measure.estimate == pytest.approx(estimate) and estimate == pytest.approx(0.26 - 0.01)
    assert measure.interval_at(0.99)[:2] == pytest.approx((low, high))
    assert measure.rates == pytest.approx(
        {"dark (clean)": 0.80, "dark (blur:1.5)": 0.54, "light (clean)": 0.76, "light (blur:1.5)": 0.75}
    )
    assert measure.note.startswith("blur:1.5 costs dark 0.26 accuracy and light 0.01: 0.25 more [")
    # the reference losing more is the same disparity, the other way round
    turned = robustness_gap(_Table(paired), "light", "dark", "blur:1.5", _Config())
    assert turned.estimate == pytest.approx(-estimate)
    assert "0.25 less" in turned.note


def test_no_perturbed_answers_is_undefined_with_its_reason():
    measure = robustness_gap(_Table("a model answering from a predictions file cannot see them"), "dark", "light",
                             "blur:1.5", _Config())  # fmt: skip
    assert (
        measure.undefined == "no answers on perturbed images: a model answering from a predictions file cannot see them"
    )


# -- through the pipeline: planted toy models ---------------------------------------------------------

EMOTIONS = ("anger", "happiness")


def _write_faces(root: Path, *, per_group: int) -> Path:
    """Images coding what the toy model needs in flat 16x16 blocks a blur leaves alone at their centres:
    block 0 the true emotion, block 1 the group (dark >= 128) plus a difficulty u in 0..127; block 2 a
    one-pixel checkerboard, which a blur flattens to grey (how the model tells a blurred face)."""
    (root / "images").mkdir(parents=True)
    rows = []
    for group, offset in (("light", 0), ("dark", 128)):
        for i in range(per_group):
            emotion = i % 2
            pixels = np.zeros((16, 48), dtype=np.uint8)
            pixels[:, :16] = 40 + 120 * emotion
            pixels[:, 16:32] = offset + (i * 37) % 128  # each u equally often in both groups
            pixels[:, 32:] = 255 * (np.add.outer(np.arange(16), np.arange(16)) % 2)
            sample = f"{group}{i:04d}"
            Image.fromarray(pixels, mode="L").save(root / "images" / f"{sample}.png")
            rows.append({"sample_id": sample, "path": f"images/{sample}.png", "emotion": EMOTIONS[emotion],
                         "subject_id": sample, "skin": group})  # fmt: skip
    manifest = root / "faces.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def _toy(calls: list[int], *, dark_cut: int, light_cut: int) -> BatchModel:
    """Right when u >= 13 on a sharp face; on a blurred one right when u >= the group's cut."""

    def predict(images):
        calls.append(len(images))
        answers = []
        for image in images:
            x = np.asarray(image, dtype=np.int64)
            emotion, code, check = x[8, 8], x[8, 24], x[8, 40]
            dark, u = code >= 128, code % 128
            sharp = abs(check - 127) > 60
            cut = 13 if sharp else (dark_cut if dark else light_cut)
            right = EMOTIONS[int(emotion > 100)]
            answers.append(right if u >= cut else EMOTIONS[1 - int(emotion > 100)])
        return answers

    return BatchModel("toy", predict, version="1", image_mode="L", batch_size=256)


def _run(tmp_path: Path, monkeypatch, model: BatchModel, perturbations: list[str], *, per_group: int = 384):
    manifest = tmp_path / "faces.csv"
    if not manifest.exists():
        _write_faces(tmp_path, per_group=per_group)
    only = ("accuracy_gap", "robustness_gap")
    document = {
        "reference": {"skin": "light"},
        "criteria": {
            name: {"enabled": name in only, **({"perturbations": perturbations} if name == "robustness_gap" else {})}
            for name in CRITERIA
        },
    }
    state = RunState.from_options(
        thresholds=parse_thresholds(document, source="test policy"),
        datasets=[f"manifest:{manifest}?name=faces"],
        models=["hog-probe"],
        seed=0,
        cache_dir=tmp_path / "cache",
        report_dir=tmp_path / "reports",
        progress="off",
    )
    monkeypatch.setattr(pipeline, "_build_model", lambda state, spec: model)
    planned = pipeline.plan(state)
    records, _facts = pipeline.run(state)
    assert sorted(p.test_id for p in planned) == sorted(r.test_id for r in records)  # the plan named them all
    return {(r.criterion, r.detail): r for r in records}


def test_a_blur_that_hurts_one_group_only_fails(tmp_path, monkeypatch):
    calls: list[int] = []
    records = _run(tmp_path, monkeypatch, _toy(calls, dark_cut=60, light_cut=20), ["blur:1.5"])
    record = records[("robustness_gap", "blur:1.5")]
    assert record.verdict is Verdict.FAIL
    # planted: clean accuracy 115/128 in both groups; blurred 68/128 (dark) and 108/128 (light)
    assert record.rates["dark (clean)"] == pytest.approx(115 / 128)
    assert record.rates["dark (blur:1.5)"] == pytest.approx(68 / 128)
    assert record.rates["light (blur:1.5)"] == pytest.approx(108 / 128)
    assert record.estimate == pytest.approx((115 - 68) / 128 - (115 - 108) / 128)
    assert "blur:1.5 costs dark 0.37 accuracy and light 0.05: 0.31 more" in record.reason
    assert records[("accuracy_gap", None)].verdict is not Verdict.FAIL  # clean accuracies are equal
    assert sum(calls) == 2 * 768  # the clean pass and one perturbed pass


def test_an_equal_drop_passes_and_a_warm_rerun_asks_nothing(tmp_path, monkeypatch):
    calls: list[int] = []
    model = _toy(calls, dark_cut=20, light_cut=20)
    record = _run(tmp_path, monkeypatch, model, ["blur:1.5"])[("robustness_gap", "blur:1.5")]
    assert record.estimate == 0 and record.verdict is Verdict.PASS
    files = sorted((tmp_path / "cache" / "perturbed" / "blur-1.5").iterdir())
    # one file per distinct source image (faces with the same group, emotion and u are the same bytes)
    sources = {hashlib.sha256(f.read_bytes()).hexdigest() for f in (tmp_path / "images").iterdir()}
    assert {f.name for f in files} == {f"{d}.png" for d in sources} and len(sources) == 256
    stamps = [f.stat().st_mtime_ns for f in files]
    calls.clear()
    again = _run(tmp_path, monkeypatch, _toy(calls, dark_cut=20, light_cut=20), ["blur:1.5"])
    assert calls == []  # clean and perturbed answers both come from the response cache
    assert [f.stat().st_mtime_ns for f in files] == stamps  # perturbed images are not written again
    assert again[("robustness_gap", "blur:1.5")].estimate == record.estimate


def test_no_sweep_means_no_robustness_tests_and_no_extra_calls(tmp_path, monkeypatch):
    calls: list[int] = []
    records = _run(tmp_path, monkeypatch, _toy(calls, dark_cut=60, light_cut=20), [], per_group=40)
    assert {c for c, _ in records} == {"accuracy_gap"}
    assert sum(calls) == 80
    assert not (tmp_path / "cache" / "perturbed").exists()


def test_perturbed_files_are_deterministic_and_named_by_source_content(tmp_path):
    manifest = _write_faces(tmp_path / "a", per_group=3)
    dataset = load_manifest(DATASETS.parse(f"manifest:{manifest}?name=faces"))
    first = perturbed_dataset(dataset, parse("jpeg:20"), tmp_path / "c1")
    second = perturbed_dataset(dataset, parse("jpeg:20"), tmp_path / "c2")
    assert list(first.samples["sample_id"]) == list(dataset.samples["sample_id"])
    assert list(first.samples["path"]) == [f"{d}.jpg" for d in dataset.image_digests]
    for a, b in zip(first.samples["path"], second.samples["path"], strict=True):
        assert (first.root / a).read_bytes() == (second.root / b).read_bytes()
    assert first.root == tmp_path / "c1" / "perturbed" / "jpeg-20"


class _Refitted(BatchModel):
    learns_from_dataset = True  # as a linear probe: cross-validated on whatever dataset it is given


def test_a_model_fitted_on_each_dataset_is_not_asked_about_perturbed_images(tmp_path, monkeypatch):
    calls: list[int] = []
    model = _toy(calls, dark_cut=60, light_cut=20)
    model.__class__ = _Refitted
    records = _run(tmp_path, monkeypatch, model, ["blur:1.5"])
    assert sum(calls) == 2 * 384  # the clean images only
    record = records[("robustness_gap", "blur:1.5")]
    assert record.verdict is Verdict.INCONCLUSIVE
    assert "fitted on each dataset it is given" in record.reason
    assert not (tmp_path / "cache" / "perturbed").exists()
