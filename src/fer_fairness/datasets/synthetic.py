"""The offline default dataset: procedurally drawn grayscale faces with known disparity mechanisms.

Every face is drawn from a per-subject identity (face shape, feature spacing, skin tone, gender
presentation) and a per-image view (expression intensity, lighting, position), then a fixed amount of
sensor noise is added. Two mechanisms, and only these, make some groups harder to read:

* contrast: facial features reflect a fixed fraction of the skin's light, so the absolute contrast
  between features and skin shrinks with skin luminance; under the same sensor noise the features of
  dark-skinned faces are harder to read;
* representation: dark-skinned subjects are few (14 per gender against 68 light-skinned), so a model
  sees little of them in training and their group estimates are the least precise.

Gender has no mechanism: both genders have the same number of subjects of each skin tone, the same
contrast and the same face geometry; gender shows only in the hair above the forehead. Labels are
never edited: every label is the expression that was drawn.

With ``counterfactual=True`` (``synthetic?counterfactual=true``) every identity and every view,
sensor noise included, is drawn once and rendered at each of the three skin tones, so the renders
of one draw differ only in skin luminance. They share a ``counterfactual_id``; ``subject_id`` stays
the identity's, so clustered inference counts a person once whatever tone they are rendered at.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage.draw import ellipse, polygon

from fer_fairness._cache import file_lock, stable_key
from fer_fairness.criteria.counterfactual import KEY as COUNTERFACTUAL_ID
from fer_fairness.datasets._table import Dataset, validate_samples
from fer_fairness.errors import ConfigError, DatasetError
from fer_fairness.labels import BASIC_SEVEN
from fer_fairness.progress import bar as progress_bar
from fer_fairness.specs import Spec, check_options

# Bump when the drawing changes: it is part of the cache folder name, so old sets are not reused.
VERSION = 1
MANIFEST = "manifest.csv"
ATTRIBUTES = ("skin_tone", "gender")
SKIN_TONES = ("light", "medium", "dark")
GENDERS = ("female", "male")

# Mean skin reflectance per tone (0 = black, 1 = white); features reflect a fraction of it.
SKIN_LUMINANCE = {"light": 0.80, "medium": 0.60, "dark": 0.40}

# (skin_tone, gender, subjects). Identical per gender, so gender carries no composition effect.
DEFAULT_SUBJECTS = (
    ("light", "female", 68),
    ("light", "male", 68),
    ("medium", "female", 58),
    ("medium", "male", 58),
    ("dark", "female", 14),
    ("dark", "male", 14),
)


@dataclass(frozen=True, kw_only=True)
class SyntheticSpec:
    """The composition of a synthetic set: who is in it and how each image is drawn."""

    subjects: tuple[tuple[str, str, int], ...] = DEFAULT_SUBJECTS
    variants: int = 3  # images per subject per expression
    image_size: int = 48
    noise_sd: float = 0.05  # sensor noise, in units of full-scale intensity
    intensity: tuple[float, float] = (0.4, 1.0)  # expression intensity, drawn uniformly per image
    emotions: tuple[str, ...] = BASIC_SEVEN

    def __post_init__(self) -> None:
        for skin_tone, gender, count in self.subjects:
            if skin_tone not in SKIN_TONES or gender not in GENDERS or int(count) < 1:
                raise DatasetError(
                    f"synthetic spec: subject group {(skin_tone, gender, count)!r} is invalid; "
                    f"skin tone must be one of {SKIN_TONES}, gender one of {GENDERS}, count >= 1"
                )
        unknown = sorted(set(self.emotions) - set(BASIC_SEVEN))
        if unknown or not self.emotions:
            raise DatasetError(
                f"synthetic spec: emotions must be a non-empty subset of {BASIC_SEVEN}; got {self.emotions!r}"
            )
        if self.variants < 1 or self.image_size < 16 or self.noise_sd < 0:
            raise DatasetError(
                "synthetic spec: variants must be >= 1, image_size >= 16 and noise_sd >= 0; "
                f"got {self.variants}, {self.image_size}, {self.noise_sd}"
            )
        low, high = self.intensity
        if not 0 <= low <= high <= 1:
            raise DatasetError(f"synthetic spec: intensity must be a range within [0, 1]; got {self.intensity!r}")

    @property
    def n_subjects(self) -> int:
        return sum(count for _, _, count in self.subjects)

    @property
    def n_images(self) -> int:
        return self.n_subjects * len(self.emotions) * self.variants


DEFAULT_SPEC = SyntheticSpec()


def load_synthetic(
    *,
    cache_dir: Path,
    seed: int = 0,
    progress: bool = True,
    spec: SyntheticSpec = DEFAULT_SPEC,
    counterfactual: bool = False,
) -> Dataset:
    """Load the synthetic set for ``spec`` and ``seed``, generating it under ``cache_dir`` on first use.

    ``counterfactual`` renders every draw at each skin tone (three times the images), tied by
    ``counterfactual_id``; it is a separate set in its own cache folder, named ``synthetic-counterfactual``.

    The same seed and spec always give byte-identical images. Generation happens in a temporary
    folder renamed into place when complete, under a file lock, so concurrent callers (xdist
    workers) wait for one generator and a killed run leaves nothing that looks complete.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"synthetic: seed must be a non-negative integer; got {seed!r}")
    cache_dir = Path(cache_dir)
    if counterfactual:  # its own folder and key, so the default set's folder name stays as it was
        folder = cache_dir / f"synthetic-cf-v{VERSION}-{stable_key(VERSION, asdict(spec), seed, 'cf', length=12)}"
    else:
        folder = cache_dir / f"synthetic-v{VERSION}-{stable_key(VERSION, asdict(spec), seed, length=12)}"
    expected = spec.n_images * (len(SKIN_TONES) if counterfactual else 1)
    if not _is_complete(folder, expected):
        with file_lock(cache_dir / f".{folder.name}.lock"):
            if not _is_complete(folder, expected):
                _generate_into(folder, spec=spec, seed=seed, progress=progress, counterfactual=counterfactual)
    return _load(folder, spec=spec, seed=seed, counterfactual=counterfactual)


def from_spec(spec: Spec, *, cache_dir: Path, seed: int, progress: bool = True) -> Dataset:
    """Registry entry for ``synthetic``: the default composition, generated for the run's seed."""
    check_options(spec, ("counterfactual",), what="dataset")
    if spec.target:
        raise ConfigError(f"dataset '{spec.text}': synthetic takes no target; write just 'synthetic'")
    given = spec.options.get("counterfactual", "false")
    flag = given.strip().lower()
    if flag not in ("true", "false"):
        raise ConfigError(f"dataset '{spec.text}': option counterfactual must be true or false; got {given!r}")
    if flag == "false":
        return load_synthetic(cache_dir=cache_dir, seed=seed, progress=progress)
    # DEFAULT_SPEC read at call time, not bound as a default argument, so tests can shrink the composition.
    return load_synthetic(cache_dir=cache_dir, seed=seed, progress=progress, spec=DEFAULT_SPEC, counterfactual=True)


def _is_complete(folder: Path, expected: int) -> bool:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        paths = pd.read_csv(manifest, usecols=["path"], dtype=str)["path"]
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return False
    return len(paths) == expected and all((folder / p).is_file() for p in paths)


def _generate_into(folder: Path, *, spec: SyntheticSpec, seed: int, progress: bool, counterfactual: bool) -> None:
    # Caller holds the lock: any leftovers are from a killed run or a damaged set.
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        (staging / "images").mkdir()
        rows = []
        renders = len(SKIN_TONES) if counterfactual else 1
        bar = progress_bar(spec.n_images * renders, "synthetic faces", progress)
        with bar:
            for row, pixels in _draw_all(spec, seed, counterfactual=counterfactual):
                Image.fromarray(pixels, mode="L").save(staging / row["path"], format="PNG")
                rows.append(row)
                bar.update()
        pd.DataFrame(rows).to_csv(staging / MANIFEST, index=False)
        os.rename(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load(folder: Path, *, spec: SyntheticSpec, seed: int, counterfactual: bool) -> Dataset:
    manifest = folder / MANIFEST
    dtypes = {"sample_id": str, "path": str, "subject_id": str, "emotion": str, COUNTERFACTUAL_ID: str}
    raw = pd.read_csv(manifest, dtype=dtypes)
    # Attributes named explicitly: counterfactual_id is a key, never a demographic attribute.
    samples, attributes, _ = validate_samples(raw, source=str(manifest), attributes=ATTRIBUTES)
    if counterfactual:
        name, description = (
            "synthetic-counterfactual",
            (
                f"procedurally drawn faces (v{VERSION}, seed {seed}), counterfactual: {spec.n_subjects} identities, "
                f"each of {spec.n_images} draws rendered at every skin tone ({len(samples)} images); "
                "renders of one draw differ only in skin luminance"
            ),
        )
    else:
        name, description = (
            "synthetic",
            (
                f"procedurally drawn faces (v{VERSION}, seed {seed}): {spec.n_subjects} subjects, "
                f"{spec.n_images} images; lower feature contrast on darker skin under fixed sensor noise, "
                "few dark-skinned subjects"
            ),
        )
    return Dataset(
        name=name,
        root=folder,
        samples=samples,
        attributes=attributes,
        emotions=tuple(e for e in BASIC_SEVEN if e in spec.emotions),
        description=description,
    )


# --- drawing -----------------------------------------------------------------------------------

# Per expression, at full intensity; intensity t scales each value's departure from neutral.
# Brow: raise (up, in face half-heights), inner (inner ends down), arch (middle up).
# Eyes: openness factor. Mouth: width factor, corners up, upper lip up, opening, bend (middle down).
# Anger and disgust share lowered, knitted brows; fear and surprise share raised brows and wide eyes.
_NEUTRAL = {
    "raise": 0.0,
    "inner": 0.0,
    "arch": 0.02,
    "open_eye": 1.0,
    "width": 1.0,
    "corners": 0.0,
    "upper": 0.0,
    "opening": 0.0,
    "bend": 0.0,
    "wrinkle": 0.0,
    "frown_lines": 0.0,
}
_EXPRESSIONS = {
    "neutral": {},
    "happiness": {"raise": 0.02, "open_eye": 0.7, "width": 1.2, "corners": 0.12, "opening": 0.05, "bend": 0.06},
    "sadness": {
        "raise": 0.02,
        "inner": -0.09,
        "arch": -0.01,
        "open_eye": 0.8,
        "width": 0.95,
        "corners": -0.09,
        "bend": -0.04,
    },
    "anger": {
        "raise": -0.07,
        "inner": 0.09,
        "arch": 0.0,
        "open_eye": 0.7,
        "width": 0.8,
        "corners": -0.02,
        "frown_lines": 1.0,
    },
    "disgust": {
        "raise": -0.06,
        "inner": 0.05,
        "arch": 0.0,
        "open_eye": 0.7,
        "width": 0.9,
        "corners": -0.05,
        "upper": 0.06,
        "opening": 0.03,
        "wrinkle": 1.0,
    },
    "fear": {
        "raise": 0.10,
        "inner": -0.04,
        "arch": 0.02,
        "open_eye": 1.6,
        "width": 1.1,
        "corners": -0.03,
        "opening": 0.10,
    },
    "surprise": {"raise": 0.10, "arch": 0.06, "open_eye": 1.6, "width": 0.75, "opening": 0.18, "bend": 0.0},
}

_CANVAS = 96  # geometry is defined on a 96-unit canvas, drawn at 2x the output size, then averaged
_JITTER = 1.5  # face position varies by up to this many canvas units per image
_SCALE = 0.03  # and its size by up to this fraction


@dataclass(frozen=True)
class _Subject:
    skin_tone: str
    gender: str
    skin: float
    hair: float
    face_w: float
    face_h: float
    jaw: float
    hairline: float
    eye_spacing: float
    eye_y: float
    mouth_y: float
    mouth_w: float
    brow_gap: float
    brow_len: float
    depth: float


def _subjects(spec: SyntheticSpec, seed: int) -> Iterator[tuple[str, _Subject]]:
    index = 0
    for skin_tone, gender, count in spec.subjects:
        for _ in range(count):
            rng = np.random.default_rng([seed, 1, index])
            index += 1
            yield (
                f"syn{index:04d}",
                _Subject(
                    skin_tone=skin_tone,
                    gender=gender,
                    skin=SKIN_LUMINANCE[skin_tone] + rng.uniform(-0.02, 0.02),
                    hair=rng.uniform(0.08, 0.22),
                    face_w=rng.uniform(24, 30),
                    face_h=rng.uniform(32, 38),
                    jaw=rng.uniform(0.80, 0.96),
                    hairline=rng.uniform(0.74, 0.86),
                    eye_spacing=rng.uniform(0.36, 0.46),
                    eye_y=rng.uniform(-0.22, -0.12),
                    mouth_y=rng.uniform(0.40, 0.50),
                    mouth_w=rng.uniform(0.30, 0.40),
                    brow_gap=rng.uniform(0.16, 0.21),
                    brow_len=rng.uniform(0.34, 0.42),
                    depth=rng.uniform(0.58, 0.62),
                ),
            )


def _draw_all(
    spec: SyntheticSpec, seed: int, *, counterfactual: bool = False
) -> Iterator[tuple[dict[str, object], np.ndarray]]:
    for subject_index, (subject_id, subject) in enumerate(_subjects(spec, seed)):
        # A counterfactual identity keeps its drawn offset from its tone's mean luminance at every tone;
        # at its own tone it is the subject itself, so that render is the default set's image.
        offset = subject.skin - SKIN_LUMINANCE[subject.skin_tone]
        renders = (
            [
                subject if t == subject.skin_tone else replace(subject, skin_tone=t, skin=SKIN_LUMINANCE[t] + offset)
                for t in SKIN_TONES
            ]
            if counterfactual
            else [subject]
        )
        for emotion in spec.emotions:
            for variant in range(spec.variants):
                draw = f"{subject_id}-{emotion}-{variant}"
                for render in renders:
                    # A fresh generator per render from the same seed: every render of one draw
                    # consumes the same numbers (skin luminance changes values, never the draws), so
                    # view, lighting and noise are identical and only the skin differs.
                    rng = np.random.default_rng([seed, 2, subject_index, BASIC_SEVEN.index(emotion), variant])
                    intensity = 0.0 if emotion == "neutral" else rng.uniform(*spec.intensity)
                    gain = rng.uniform(0.7, 1.1)
                    pixels = _draw_face(render, emotion, intensity=intensity, gain=gain, spec=spec, rng=rng)
                    sample_id = f"{draw}-{render.skin_tone}" if counterfactual else draw
                    row = {
                        "sample_id": sample_id,
                        "path": f"images/{sample_id}.png",
                        "emotion": emotion,
                        "subject_id": subject_id,
                        "skin_tone": render.skin_tone,
                        "gender": render.gender,
                        "source_intensity": round(intensity, 3),
                        "source_lighting": round(gain, 3),
                        "source_skin_luminance": round(render.skin, 3),
                    }
                    if counterfactual:
                        row[COUNTERFACTUAL_ID] = draw
                    yield row, pixels


def _draw_face(
    s: _Subject, emotion: str, *, intensity: float, gain: float, spec: SyntheticSpec, rng: np.random.Generator
) -> np.ndarray:
    n = 2 * spec.image_size
    u = n / _CANVAS
    p = {**_NEUTRAL}
    for key, value in _EXPRESSIONS[emotion].items():
        p[key] = _NEUTRAL[key] + intensity * (value - _NEUTRAL[key])

    scale = rng.uniform(1 - _SCALE, 1 + _SCALE)
    cx = (48 + rng.uniform(-_JITTER, _JITTER)) * u
    cy = (50 + rng.uniform(-_JITTER, _JITTER)) * u
    a, b = s.face_w * scale * u, s.face_h * scale * u  # face half-width, half-height
    shape = (n, n)

    canvas = np.full(shape, rng.uniform(0.45, 0.65))
    # Gender presentation lives in the hair above the forehead only: a tall rounded crown or a short
    # flat top. Long hair framing the cheeks, or a narrower jaw, put strong edges next to the eyes and
    # mouth and made them harder to read (about 3 points), which would be a gender mechanism.
    hair = np.zeros(shape, dtype=bool)
    hair[ellipse(cy - 0.12 * b, cx, 1.06 * b, 1.06 * a, shape=shape)] = True
    if s.gender == "female":
        hair[ellipse(cy - 1.0 * b, cx, 0.3 * b, 0.75 * a, shape=shape)] = True
    else:
        hair[: max(0, int(cy - 1.0 * b)), :] = False
    canvas[hair] = s.hair
    face = np.zeros(shape, dtype=bool)
    face[ellipse(cy - 0.12 * b, cx, 0.92 * b, a, shape=shape)] = True
    face[ellipse(cy + 0.3 * b, cx, 0.7 * b, s.jaw * a, shape=shape)] = True
    face[: max(0, int(cy - s.hairline * b)), :] = False
    canvas[face] = s.skin

    dark = np.zeros(shape)  # fraction of the skin's light that each feature absorbs
    depth = s.depth
    eye_y = cy + s.eye_y * b
    for side in (-1, 1):
        ex = cx + side * s.eye_spacing * a
        _mark(dark, ellipse(eye_y, ex, max(0.07 * b * p["open_eye"], 1.2 * u), 0.17 * a, shape=shape), depth + 0.1)
        # Brow: outer and inner ends, arched middle; "inner" pulls the end nearest the nose down.
        half = s.brow_len * a / 2
        base = eye_y - s.brow_gap * b - p["raise"] * b
        outer, inner = ex + side * half, ex - side * half
        xs = np.linspace(outer, inner, 12)
        t = np.linspace(0, 1, 12)
        ys = base + t * p["inner"] * b - p["arch"] * b * 4 * t * (1 - t)
        _stroke(dark, xs, ys, 3.2 * u, depth, shape)

    if p["frown_lines"] > 0:  # vertical creases between the brows
        for side in (-1, 1):
            x = cx + side * 0.07 * a
            ys = np.linspace(eye_y - 0.14 * b, eye_y - 0.02 * b, 6)
            _stroke(dark, np.full(6, x), ys, 1.6 * u, depth * 0.7 * p["frown_lines"], shape)
    if p["wrinkle"] > 0:  # horizontal creases across the nose bridge
        for k in range(3):
            y = eye_y + (0.05 + 0.06 * k) * b
            xs = np.linspace(cx - 0.14 * a, cx + 0.14 * a, 6)
            _stroke(dark, xs, np.full(6, y), 1.6 * u, depth * 0.7 * p["wrinkle"], shape)

    nose_y = cy + 0.2 * b
    for side in (-1, 1):
        _mark(dark, ellipse(nose_y, cx + side * 0.11 * a, 1.5 * u, 2.0 * u, shape=shape), depth * 0.8)

    # Mouth: two lip curves from corner to corner; filled between them when open.
    mouth_y = cy + s.mouth_y * b
    half = s.mouth_w * a * p["width"]
    xs = np.linspace(cx - half, cx + half, 16)
    t = np.linspace(-1, 1, 16)
    bowl = 1 - t**2
    corners = mouth_y - p["corners"] * b
    upper = corners + (p["bend"] * b - p["upper"] * b * (1 + 0.5 * t)) * bowl
    lower = corners + (p["bend"] * b + p["opening"] * b) * bowl
    if p["opening"] * b > 1.0 * u:
        _mark(dark, polygon(np.r_[upper, lower[::-1]], np.r_[xs, xs[::-1]], shape=shape), depth + 0.2)
        _stroke(dark, xs, lower, 2.0 * u, depth, shape)
    _stroke(dark, xs, upper, 2.6 * u, depth, shape)

    canvas = canvas * (1 - np.minimum(dark, 0.95) * face)
    small = canvas.reshape(spec.image_size, 2, spec.image_size, 2).mean(axis=(1, 3))

    # Lighting: an overall level times a linear gradient in a random direction.
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0 : spec.image_size, 0 : spec.image_size] / spec.image_size - 0.5
    gradient = 1 + rng.uniform(0, 0.5) * (xx * math.cos(angle) + yy * math.sin(angle))
    lit = small * gain * gradient + rng.normal(0, spec.noise_sd, small.shape)
    return np.clip(np.rint(lit * 255), 0, 255).astype(np.uint8)


def _mark(dark: np.ndarray, coords: tuple[np.ndarray, np.ndarray], value: float) -> None:
    rr, cc = coords
    dark[rr, cc] = np.maximum(dark[rr, cc], value)


def _stroke(dark: np.ndarray, xs: np.ndarray, ys: np.ndarray, width: float, value: float, shape) -> None:
    """A thick polyline through (xs, ys), as one polygon offset along the normals."""
    dx, dy = np.gradient(xs), np.gradient(ys)
    norm = np.hypot(dx, dy)
    norm[norm == 0] = 1
    nx, ny = -dy / norm * width / 2, dx / norm * width / 2
    rows = np.r_[ys + ny, (ys - ny)[::-1]]
    cols = np.r_[xs + nx, (xs - nx)[::-1]]
    _mark(dark, polygon(rows, cols, shape=shape), value)
