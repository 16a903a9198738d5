"""Builders of tiny studies on disk: images, a manifest and a predictions file with chosen outcomes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from PIL import Image


def write_study(
    root: Path,
    cells: Iterable[tuple[dict[str, str], str, str, int]],
    *,
    name: str = "study",
) -> tuple[Path, Path]:
    """Write one 2x2 PNG per sample, ``manifest.csv`` and ``predictions.csv`` under ``root``.

    ``cells`` lists (attributes, true emotion, outcome, count): ``count`` samples with those values.
    Each sample is its own subject. Returns (manifest path, predictions path).
    """
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows, predictions = [], []
    for attributes, emotion, outcome, count in cells:
        for _ in range(count):
            sample_id = f"s{len(rows):05d}"
            path = f"images/{sample_id}.png"
            Image.new("L", (2, 2), color=len(rows) % 256).save(root / path)
            rows.append(
                {"sample_id": sample_id, "path": path, "emotion": emotion, "subject_id": sample_id, **attributes}
            )
            predictions.append({"sample_id": sample_id, "prediction": outcome})
    manifest = root / f"{name}.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    preds = root / "predictions.csv"
    pd.DataFrame(predictions).to_csv(preds, index=False)
    return manifest, preds


def study_state(root: Path, manifest: Path, predictions: Path, *, thresholds=None, model: str = "m"):
    """A run of the predictions file on the manifest (dataset 'toy'), caching and reporting under ``root``;
    ``thresholds`` None: the built-in policy."""
    from fer_fairness.config import load_thresholds
    from fer_fairness.session import RunState

    return RunState.from_options(
        thresholds=load_thresholds(None) if thresholds is None else thresholds,
        datasets=[f"manifest:{manifest}?name=toy"],
        models=[f"predictions:{predictions}?name={model}"],
        seed=0,
        cache_dir=root / "cache",
        report_dir=root / "reports",
    )
