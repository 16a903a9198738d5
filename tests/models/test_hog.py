"""HOG embedder: the same numbers as scikit-image, any image size in, one fixed dimension out."""

from __future__ import annotations

import numpy as np
import pytest
import skimage
from PIL import Image
from skimage.feature import hog

from fer_fairness.errors import ModelError
from fer_fairness.models.hog import HogEmbedder


def write_image(path, size, *, mode="L", seed=0):
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def test_features_match_scikit_image(tmp_path):
    path = write_image(tmp_path / "a.png", 48)
    embedder = HogEmbedder(image_size=48, cell_size=8, block_size=2, orientations=9)
    features = embedder.embed([path], progress=False)
    pixels = np.asarray(Image.open(path), dtype=np.float32) / 255
    expected = hog(pixels, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
    assert features.dtype == np.float32
    assert features.shape == (1, embedder.dimension) == (1, 5 * 5 * 4 * 9)
    np.testing.assert_allclose(features[0], expected, rtol=1e-5, atol=1e-6)


def test_other_sizes_and_colour_images_are_resized_to_gray(tmp_path):
    paths = [write_image(tmp_path / "big.png", 96, mode="RGB"), write_image(tmp_path / "small.png", 30, seed=1)]
    features = HogEmbedder(image_size=48, cell_size=6).embed(paths, progress=False)
    assert features.shape == (2, HogEmbedder(image_size=48, cell_size=6).dimension)
    assert np.isfinite(features).all()


def test_settings_identify_the_features():
    settings = HogEmbedder(cell_size=6).settings()
    assert settings == {
        "image_size": 48,
        "cell_size": 6,
        "block_size": 2,
        "orientations": 9,
        "block_norm": "L2-Hys",
        "scikit-image": skimage.__version__,
    }
    assert HogEmbedder().settings() != settings
    assert HogEmbedder.name == "hog"


def test_no_images_give_an_empty_matrix():
    assert HogEmbedder().embed([], progress=False).shape == (0, HogEmbedder().dimension)


def test_unreadable_image_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ModelError, match=r"hog: cannot read image .*bad\.png"):
        HogEmbedder().embed([bad], progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell_size": 0}, "cell_size must be an integer >= 2; got 0"),
        ({"orientations": 2.5}, "orientations must be an integer >= 2; got 2.5"),
        ({"image_size": 16, "cell_size": 9}, r"image_size \(16\) must hold at least one block"),
    ],
)
def test_invalid_settings_are_rejected(kwargs, message):
    with pytest.raises(ModelError, match=message):
        HogEmbedder(**kwargs)


def test_progress_goes_to_stderr(tmp_path, capsys):
    HogEmbedder().embed([write_image(tmp_path / "a.png", 48)], progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "hog features" in captured.err


def test_held_bytes_are_decoded_instead_of_the_file(tmp_path):
    a = write_image(tmp_path / "a.png", 48, seed=1)
    b = write_image(tmp_path / "b.png", 40, mode="RGB", seed=2)
    embedder = HogEmbedder()
    from_files = embedder.embed([a, b], progress=False)
    # position 0 is handed b's bytes under a's name: the features are b's, so the file was not read
    swapped = embedder.embed([a, b], progress=False, held={0: b.read_bytes()})
    np.testing.assert_array_equal(swapped, from_files[[1, 1]])
    np.testing.assert_array_equal(embedder.embed([a, b], progress=False, held={1: b.read_bytes()}), from_files)
