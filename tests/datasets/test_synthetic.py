"""The synthetic default set: deterministic, cached safely, and with only the intended mechanisms."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_fairness.datasets import DATASETS, synthetic
from fer_fairness.datasets._table import validate_samples
from fer_fairness.datasets.synthetic import DEFAULT_SPEC, SyntheticSpec, load_synthetic
from fer_fairness.errors import ConfigError, DatasetError
from fer_fairness.labels import BASIC_SEVEN

TINY = SyntheticSpec(
    subjects=(("light", "female", 2), ("light", "male", 2), ("dark", "female", 1), ("dark", "male", 1)),
    variants=1,
)


def image_bytes(dataset) -> dict[str, bytes]:
    return {row.sample_id: (dataset.root / row.path).read_bytes() for row in dataset.samples.itertuples()}


def test_same_seed_gives_byte_identical_images(tmp_path):
    first = load_synthetic(cache_dir=tmp_path / "a", seed=3, spec=TINY, progress=False)
    second = load_synthetic(cache_dir=tmp_path / "b", seed=3, spec=TINY, progress=False)
    assert image_bytes(first) == image_bytes(second)
    pd.testing.assert_frame_equal(first.samples, second.samples)
    assert first.fingerprint() == second.fingerprint()


def test_different_seed_gives_different_images(tmp_path):
    first = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    second = load_synthetic(cache_dir=tmp_path, seed=1, spec=TINY, progress=False)
    assert first.root != second.root
    one, other = image_bytes(first), image_bytes(second)
    assert one.keys() == other.keys()
    assert all(one[k] != other[k] for k in one)


def test_sample_table_is_valid_and_points_at_grayscale_images(tmp_path):
    dataset = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    samples, attributes, emotions = validate_samples(dataset.samples, source="synthetic")
    assert attributes == ("skin_tone", "gender") == dataset.attributes
    assert emotions == BASIC_SEVEN == dataset.emotions
    assert dataset.name == "synthetic"
    assert samples["sample_id"].is_unique
    assert {c for c in samples.columns if c.startswith("source_")} == {
        "source_intensity",
        "source_lighting",
        "source_skin_luminance",
    }
    for row in samples.itertuples():
        with Image.open(dataset.root / row.path) as image:
            assert (image.mode, image.size) == ("L", (TINY.image_size, TINY.image_size))
    neutral = samples["emotion"] == "neutral"
    assert (samples.loc[neutral, "source_intensity"] == 0).all()
    low, high = TINY.intensity
    assert samples.loc[~neutral, "source_intensity"].between(low, high).all()


def test_composition_follows_the_spec(tmp_path):
    dataset = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    samples = dataset.samples
    assert len(samples) == TINY.n_images == 6 * 7
    subjects = samples.groupby("subject_id")[["skin_tone", "gender"]].first()
    counts = subjects.value_counts().to_dict()
    assert counts == {(tone, gender): n for tone, gender, n in TINY.subjects}
    per_subject = samples.groupby("subject_id")["emotion"].value_counts()
    assert (per_subject == TINY.variants).all()
    assert set(samples["emotion"]) == set(BASIC_SEVEN)


def test_default_composition_is_gender_balanced_with_few_dark_skinned_subjects():
    subjects = {(tone, gender): n for tone, gender, n in DEFAULT_SPEC.subjects}
    for tone in synthetic.SKIN_TONES:
        assert subjects[(tone, "female")] == subjects[(tone, "male")]  # gender carries no composition effect
    per_gender = sum(n for (_, gender), n in subjects.items() if gender == "female")
    assert 120 <= per_gender <= 140
    assert 10 <= subjects[("dark", "female")] <= 15
    assert subjects[("dark", "female")] < subjects[("medium", "female")] / 3
    assert 5000 <= DEFAULT_SPEC.n_images <= 7000


def test_second_call_reuses_the_set_without_drawing(tmp_path, monkeypatch):
    first = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in first.root.rglob("*")}

    def refuse(*args, **kwargs):
        raise AssertionError("the set was drawn again")

    monkeypatch.setattr(synthetic, "_draw_all", refuse)
    second = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    assert second.root == first.root
    assert {p: p.stat().st_mtime_ns for p in second.root.rglob("*")} == mtimes
    pd.testing.assert_frame_equal(first.samples, second.samples)


def test_damaged_set_is_regenerated_identically(tmp_path):
    first = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    original = image_bytes(first)
    victim = first.root / first.samples["path"].iloc[5]
    victim.unlink()
    second = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    assert image_bytes(second) == original


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    real = synthetic._draw_face
    drawn = []

    def crash_midway(*args, **kwargs):
        drawn.append(1)
        if len(drawn) > 10:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_draw_face", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # no set, no staging folder

    monkeypatch.setattr(synthetic, "_draw_face", real)
    dataset = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    assert len(dataset.samples) == TINY.n_images


def _load_in_child(cache_dir: str) -> str:
    return load_synthetic(cache_dir=Path(cache_dir), seed=5, spec=TINY, progress=False).fingerprint()


def test_concurrent_loaders_agree_and_leave_one_set(tmp_path):
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        fingerprints = pool.map(_load_in_child, [str(tmp_path)] * 3)
    assert len(set(fingerprints)) == 1
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].name.startswith(f"synthetic-v{synthetic.VERSION}-")


def face_contrast(dataset) -> pd.DataFrame:
    """Per image: skin level minus feature level inside the central face box, and the noise level.

    The central box (rows 35-80%, columns 25-75%) lies inside every face; its median is skin, its
    3rd percentile the darkest features (brows, eyes, mouth). Noise is read from the background corners
    as the spread of horizontal pixel differences (the lighting gradient is far smoother).
    """
    rows = []
    for row in dataset.samples.itertuples():
        pixels = np.asarray(Image.open(dataset.root / row.path), dtype=float) / 255
        n = pixels.shape[0]
        box = pixels[int(0.35 * n) : int(0.8 * n), int(0.25 * n) : int(0.75 * n)]
        corners = np.concatenate([pixels[:6, :6], pixels[:6, -6:]], axis=1)
        rows.append(
            {
                "skin_tone": row.skin_tone,
                "gender": row.gender,
                "contrast": (np.median(box) - np.percentile(box, 3)) / row.source_lighting,
                "noise": np.diff(corners, axis=1).std() / np.sqrt(2),
            }
        )
    return pd.DataFrame(rows)


def test_darker_skin_gives_less_feature_contrast_under_the_same_noise(tmp_path):
    spec = SyntheticSpec(
        subjects=tuple((tone, gender, 2) for tone in synthetic.SKIN_TONES for gender in synthetic.GENDERS),
        variants=1,
        noise_sd=0.0,
    )
    clean = face_contrast(load_synthetic(cache_dir=tmp_path, seed=0, spec=spec, progress=False))
    contrast = clean.groupby("skin_tone")["contrast"].mean()
    # Features absorb a fixed fraction of the skin's light: contrast scales with skin luminance.
    luminance = synthetic.SKIN_LUMINANCE
    assert contrast["dark"] < contrast["medium"] < contrast["light"]
    for tone in ("medium", "dark"):
        expected = luminance[tone] / luminance["light"]
        assert contrast[tone] / contrast["light"] == pytest.approx(expected, rel=0.15)
    by_gender = clean.groupby("gender")["contrast"].mean()
    assert by_gender["female"] == pytest.approx(by_gender["male"], rel=0.1)  # gender: same contrast

    noisy_spec = SyntheticSpec(subjects=spec.subjects, variants=1)
    noisy = face_contrast(load_synthetic(cache_dir=tmp_path, seed=0, spec=noisy_spec, progress=False))
    noise = noisy.groupby("skin_tone")["noise"].mean()  # the same sensor noise on every face
    assert noise.to_numpy() == pytest.approx(np.full(3, noisy_spec.noise_sd), rel=0.2)


def test_registry_builds_the_default_set(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(synthetic, "load_synthetic", lambda **kwargs: calls.append(kwargs) or "dataset")
    spec = DATASETS.parse("synthetic")
    assert DATASETS.factory(spec.kind)(spec, cache_dir=tmp_path, seed=4, progress=False) == "dataset"
    assert calls == [{"cache_dir": tmp_path, "seed": 4, "progress": False}]


@pytest.mark.parametrize("text", ["synthetic:faces", "synthetic:?size=3"])
def test_registry_rejects_targets_and_options(tmp_path, text):
    spec = DATASETS.parse(text)
    with pytest.raises(ConfigError, match="synthetic|unknown option"):
        DATASETS.factory(spec.kind)(spec, cache_dir=tmp_path, seed=0, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subjects": (("purple", "female", 2),)}, "skin tone must be one of"),
        ({"subjects": (("dark", "female", 0),)}, "count >= 1"),
        ({"emotions": ("anger", "contempt")}, "non-empty subset"),
        ({"variants": 0}, "variants must be >= 1"),
        ({"intensity": (0.8, 0.2)}, "intensity must be a range"),
    ],
)
def test_invalid_spec_is_rejected(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        SyntheticSpec(**kwargs)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_invalid_seed_is_rejected(tmp_path, seed):
    with pytest.raises(DatasetError, match="seed must be a non-negative integer"):
        load_synthetic(cache_dir=tmp_path, seed=seed, spec=TINY, progress=False)


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "synthetic faces" in captured.err


def test_cache_folder_name_holds_version_and_spec(tmp_path):
    a = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, progress=False)
    b = load_synthetic(
        cache_dir=tmp_path, seed=0, spec=SyntheticSpec(subjects=TINY.subjects, variants=2), progress=False
    )
    assert a.root.parent == b.root.parent == tmp_path
    assert a.root != b.root
    assert os.path.basename(a.root).startswith(f"synthetic-v{synthetic.VERSION}-")
