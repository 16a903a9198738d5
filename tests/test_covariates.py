"""Image covariates against numpy's own formulas on small images, and the cache keyed by image bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_fairness import covariates
from fer_fairness.datasets._table import Dataset


def _save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels.astype(np.uint8)).save(path)  # PNG: lossless, the bytes hold these pixels
    return path


def _laplace_variance(grey: np.ndarray) -> float:
    """The 5-point Laplacian with mirrored edges (the edge pixel repeated), written out in numpy."""
    padded = np.pad(grey, 1, mode="symmetric")
    laplacian = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * padded[1:-1, 1:-1]
    return float(laplacian.var())


def test_covariates_match_direct_numpy_formulas(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(12, 20, 3))
    values = covariates.measure_image(_save(tmp_path / "a.png", rgb))
    # ITU-R BT.601 luma, rounded to whole grey levels as an 8-bit grey image stores it
    grey = np.floor(rgb @ np.array([0.299, 0.587, 0.114]) + 0.5) / 255.0
    assert values["luminance"] == pytest.approx(grey.mean(), abs=1 / 255)
    assert values["contrast"] == pytest.approx(grey.std(), abs=1 / 255)
    assert values["resolution"] == 12 * 20
    stored = np.asarray(Image.open(tmp_path / "a.png").convert("L"), dtype=float) / 255.0
    assert values["sharpness"] == pytest.approx(_laplace_variance(stored), rel=1e-9)


def test_a_flat_image_has_no_contrast_and_no_sharpness(tmp_path):
    values = covariates.measure_image(_save(tmp_path / "flat.png", np.full((8, 8), 51)))
    assert values == {
        "luminance": pytest.approx(0.2),
        "contrast": pytest.approx(0, abs=1e-12),
        "sharpness": pytest.approx(0, abs=1e-12),
        "resolution": 64.0,
    }


def test_a_large_image_is_measured_downscaled_but_its_resolution_as_stored(tmp_path):
    stripes = np.tile(np.repeat([0, 255], 4), 160)[None, :].repeat(100, axis=0)  # 100 x 1280
    values = covariates.measure_image(_save(tmp_path / "wide.png", stripes))
    assert values["resolution"] == 100 * 1280
    small = Image.fromarray(stripes.astype(np.uint8)).resize((512, 40), Image.Resampling.BILINEAR)
    grey = np.asarray(small, dtype=float) / 255.0
    assert values["luminance"] == pytest.approx(grey.mean()) and grey.mean() == pytest.approx(0.5, abs=0.01)
    assert values["contrast"] == pytest.approx(grey.std())
    assert values["sharpness"] == pytest.approx(_laplace_variance(grey))


def test_face_box_area_from_the_loader_column():
    boxes = pd.Series(["10,20,30,40", "", "1,2,3", "0,0,-5,5", "a,b,c,d"])
    area = covariates.face_box_area(boxes)
    assert area.iloc[0] == 1200.0 and area.iloc[1:].isna().all()


def _dataset(root: Path) -> Dataset:
    samples = pd.DataFrame(
        {
            "sample_id": ["1", "2", "3"],
            "path": ["a.png", "b.png", "missing.png"],
            "emotion": ["anger"] * 3,
            "subject_id": ["p1", "p2", "p3"],
            "race": ["Black", "White", "White"],
            covariates.FACE_BOX: ["0,0,4,5", "", ""],
        }
    )
    return Dataset(name="d", root=root, samples=samples, attributes=("race",), emotions=("anger",))


def test_the_cache_is_used_warm_and_invalidated_by_new_bytes(tmp_path, monkeypatch):
    _save(tmp_path / "a.png", np.full((6, 6), 0))
    _save(tmp_path / "b.png", np.full((6, 6), 255))
    cache = tmp_path / "cache"
    cold = covariates.for_dataset(_dataset(tmp_path), cache)
    assert cold["luminance"].tolist()[:2] == [0.0, 1.0] and np.isnan(cold.loc[2, "luminance"])
    assert cold["face_box"].iloc[0] == 20.0 and cold["face_box"].iloc[1:].isna().all()

    read: list[Path] = []
    measure = covariates.measure_image
    monkeypatch.setattr(covariates, "measure_image", lambda path: read.append(Path(path).name) or measure(path))
    warm = covariates.for_dataset(_dataset(tmp_path), cache)  # a fresh Dataset: digests read again
    assert read == []
    pd.testing.assert_frame_equal(warm, cold)

    _save(tmp_path / "b.png", np.full((6, 6), 102))  # new bytes, same name
    changed = covariates.for_dataset(_dataset(tmp_path), cache)
    assert read == ["b.png"]
    assert changed.loc[1, "luminance"] == pytest.approx(0.4)


def test_distributions_per_group_are_numpy_quantiles():
    samples = pd.DataFrame({"race": ["A"] * 5 + ["B"] * 3})
    values = pd.DataFrame({name: np.nan for name in covariates.COVARIATES}, index=samples.index)
    values["luminance"] = [0.1, 0.2, 0.3, 0.4, 1.0, 0.5, 0.5, np.nan]
    out = covariates.distributions(samples, values, ("race",))
    a = out["race"]["A"]["luminance"]
    assert a == {
        "n": 5,
        "mean": pytest.approx(0.4),
        "q1": pytest.approx(0.2),
        "median": pytest.approx(0.3),
        "q3": pytest.approx(0.4),
    }
    assert out["race"]["B"]["luminance"]["n"] == 2 and "contrast" not in out["race"]["B"]


def test_a_run_reports_covariates_per_group_and_tests_adjusted_gap(tmp_path):
    from fer_fairness import pipeline
    from tests.studies import study_state, write_study

    cells = [  # right and wrong answers alternate, so grey level does not separate them
        ({"race": r}, e, o, 1)
        for r in ("Black", "White")
        for e in ("anger", "disgust")
        for _ in range(20)
        for o in (e, "anger" if e == "disgust" else "disgust")
    ]
    manifest, predictions = write_study(tmp_path, cells)  # sample i is a flat image of grey level i % 256
    records, facts = pipeline.run(study_state(tmp_path, manifest, predictions))
    black = np.arange(80) % 256 / 255.0  # the first 80 samples are Black
    luminance = facts["covariates"]["toy"]["race"]["Black"]["luminance"]
    assert luminance["n"] == 80 and luminance["mean"] == pytest.approx(black.mean())
    assert luminance["q1"] == pytest.approx(np.quantile(black, 0.25))
    adjusted = [r for r in records if r.criterion == "adjusted_gap"]
    # equal sizes: the alphabetically first group is the reference
    assert [r.test_id for r in adjusted] == ["m|toy|race=White~Black"]
    assert adjusted[0].estimate is not None, adjusted[0].reason
    assert "unadjusted +0.000 -> adjusted" in adjusted[0].note  # both groups 80 of 160 right
