"""Synthetic manifests and predictions files of any size for the benchmarks (race x gender, 7 emotions).

A manifest needs image files, and a million PNGs would measure the disk, not the product: rows share
a few hundred tiny images (the loader checks ids for uniqueness, not paths), so every per-image step
(path check, decode check, digest) still sees one row per prediction.
"""

from __future__ import annotations

import io
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

RACES = ("asian", "black", "indian", "latino", "middle-eastern", "southeast-asian", "white")
GENDERS = ("female", "male")
# The seven basic expressions (the vocabulary also has contempt and calm, which few sets label).
EMOTIONS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
IMAGES = 300  # distinct image files the rows point at
ACCURACY = 0.7  # each group's accuracy is this, give or take a few points


def write_images(folder: Path, count: int = IMAGES) -> list[str]:
    """``count`` distinct 8x8 PNGs under folder/img; their paths relative to ``folder``."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        rel = f"img/{i:04d}.png"
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, format="PNG")
        (folder / rel).write_bytes(buffer.getvalue())
        paths.append(rel)
    return paths


def write_run(folder: Path, n: int, *, seed: int = 0, name: str = "faces", models: int = 1) -> tuple[Path, list[Path]]:
    """A manifest of ``n`` rows and ``models`` predictions files answering every row; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = write_images(folder)
    rng = np.random.default_rng(seed)
    race = rng.integers(0, len(RACES), n)
    gender = rng.integers(0, len(GENDERS), n)
    emotion = rng.integers(0, len(EMOTIONS), n)
    ids = np.char.add("s", np.arange(n).astype(str))
    manifest = folder / f"{name}.csv"
    pd.DataFrame(
        {
            "sample_id": ids,
            "path": np.asarray(paths, dtype=object)[np.arange(n) % len(paths)],
            "emotion": np.asarray(EMOTIONS, dtype=object)[emotion],
            "subject_id": np.char.add("p", (np.arange(n) // 4).astype(str)),
            "race": np.asarray(RACES, dtype=object)[race],
            "gender": np.asarray(GENDERS, dtype=object)[gender],
        }
    ).to_csv(manifest, index=False)
    files = []
    for m in range(models):
        # group accuracies 0.64..0.76 so some criteria pass, some fail and some stay inconclusive
        accuracy = ACCURACY + 0.02 * (race - 3) + 0.01 * gender - 0.01 * m
        right = rng.random(n) < accuracy
        wrong = (emotion + rng.integers(1, len(EMOTIONS), n)) % len(EMOTIONS)
        predicted = np.where(right, emotion, wrong)
        path = folder / f"{name}-model{m}.csv"
        pd.DataFrame({"sample_id": ids, "prediction": np.asarray(EMOTIONS, dtype=object)[predicted]}).to_csv(
            path, index=False
        )
        files.append(path)
    return manifest, files


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class Clock:
    """Named stage timings: ``with clock("load"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str) -> Clock:
        self._stage = stage
        return self

    def __enter__(self) -> Clock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + time.perf_counter() - self._start
