"""Image covariates: what a photo looks like, apart from who is in it, measured once per image.

A disparity between groups may come from the pictures (one group photographed darker, blurrier,
smaller) rather than from the group; these numbers let ``adjusted_gap`` hold them equal and let a
report show at once when one group's photos differ. Each image's values are cached by the SHA-256
of its bytes (``Dataset.image_digests``), so a warm run decodes no image and an edited image is
measured again.

* ``luminance``: mean grey level in [0, 1] (ITU-R BT.601 luma, as PIL's "L" conversion computes it);
* ``contrast``: RMS contrast, the standard deviation of the grey levels in [0, 1];
* ``sharpness``: variance of the Laplacian of the grey image (Pech-Pacheco et al. 2000), grey levels
  in [0, 1];
* ``resolution``: width x height in pixels, of the image as stored;
* ``face_box``: the face's box area in pixels, where the loader gives ``source_face_box`` (FACE_BOX);
  missing otherwise.

luminance, contrast and sharpness are measured on the image downscaled (bilinear; JPEGs decoded at reduced scale) so
its longer side is at most SIDE pixels: a 6-megapixel photo costs little more than a small one, and
sharpness is compared at one scale whatever the camera (luminance keeps its mean; contrast and
sharpness lose only detail finer than the reduced grid).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_fairness._cache import atomic_path, file_lock

COVARIATES: tuple[str, ...] = ("luminance", "contrast", "sharpness", "resolution", "face_box")
# Read from the image itself (cached by digest); face_box comes from the sample table.
FROM_IMAGE: tuple[str, ...] = COVARIATES[:4]
# A loader that knows where the face is gives this column: "left,top,width,height" in pixels of the
# stored image (a source_* column, so it is reported but never compared as a demographic attribute).
FACE_BOX = "source_face_box"
SIDE = 512
_VERSION = 1  # bump when a formula changes: old cache entries are then ignored


def measure_image(path: Path) -> dict[str, float]:
    """The image covariates of one image file (see the module docstring for each definition)."""
    from PIL import Image
    from scipy import ndimage

    with Image.open(path) as image:
        width, height = image.size  # as stored, before any reduction
        # A JPEG can be decoded at 1/2, 1/4 or 1/8 scale directly, which is most of the cost saved.
        image.draft("L", (SIDE, SIDE))
        grey = image.convert("L")
        if max(grey.size) > SIDE:
            scale = SIDE / max(grey.size)
            size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
            grey = grey.resize(size, Image.Resampling.BILINEAR)
        pixels = np.asarray(grey, dtype=np.float64) / 255.0
    return {
        "luminance": float(pixels.mean()),
        "contrast": float(pixels.std()),
        "sharpness": float(ndimage.laplace(pixels, mode="reflect").var()),
        "resolution": float(width * height),
    }


def face_box_area(values: pd.Series) -> pd.Series:
    """``source_face_box`` ("left,top,width,height") -> box area in pixels; NaN where blank or malformed."""

    def area(text: Any) -> float:
        try:
            parts = [float(p) for p in str(text).split(",")]
        except ValueError:
            return math.nan
        if len(parts) != 4 or parts[2] <= 0 or parts[3] <= 0:
            return math.nan
        return parts[2] * parts[3]

    return values.map(area).astype(float)


def _cache_file(cache_dir: Path) -> Path:
    # numpy's npz, not parquet: plain arrays need no pyarrow, whose pandas extension types cannot be
    # registered twice (pytester's in-process runs re-import modules)
    return Path(cache_dir) / "covariates" / f"images-v{_VERSION}.npz"


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=list(FROM_IMAGE), index=pd.Index([], name="digest"), dtype=float)
    with np.load(path, allow_pickle=False) as stored:
        return pd.DataFrame(stored["values"], columns=list(FROM_IMAGE), index=pd.Index(stored["digest"], name="digest"))


def _write(path: Path, known: pd.DataFrame) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, digest=known.index.to_numpy(dtype=str), values=known[list(FROM_IMAGE)].to_numpy(dtype=float))


def for_dataset(dataset: Any, cache_dir: Path | None) -> pd.DataFrame:
    """One row per sample (the samples' index) with a column per covariate; NaN where an image is absent.

    Images already in the cache (by digest) are not decoded; new ones are measured once and added to
    the cache under a lock, written atomically, so concurrent workers never leave a torn file.
    """
    # One image read per content, however many rows share it: each distinct digest with the first
    # row's path, and rows as codes into the distinct digests (no per-row strings).
    codes, distinct = pd.factorize(dataset.image_digests)
    first = np.unique(codes, return_index=True)[1]
    paths = dict(zip(distinct, dataset.samples["path"].iloc[first], strict=True))
    paths.pop("", None)  # absent images have no digest and no covariates
    if cache_dir is None:
        known = _measure_all(dataset.root, paths)
    else:
        target = _cache_file(cache_dir)
        known = _read(target)
        missing = {d: p for d, p in paths.items() if d not in known.index}
        if missing:
            with file_lock(target.with_suffix(".lock")):
                known = _read(target)  # another worker may have measured them meanwhile
                missing = {d: p for d, p in paths.items() if d not in known.index}
                if missing:
                    new = _measure_all(dataset.root, missing)
                    known = pd.concat([known, new]) if len(known) else new
                    _write(target, known)
    per_image = known.reindex(distinct)[list(FROM_IMAGE)].to_numpy(dtype=float)
    values = pd.DataFrame(per_image[codes], columns=list(FROM_IMAGE), index=dataset.samples.index)
    samples = dataset.samples
    face = face_box_area(samples[FACE_BOX]) if FACE_BOX in samples.columns else pd.Series(math.nan, index=samples.index)
    return values.assign(face_box=face.to_numpy()).astype(float)


def _measure_all(root: Path, paths: dict[str, str]) -> pd.DataFrame:
    rows = []
    for digest, path in paths.items():
        try:
            values = measure_image(Path(root) / path)
        except Exception:  # noqa: BLE001 - an image PIL cannot read has no covariates; the model judges it anyway
            values = dict.fromkeys(FROM_IMAGE, math.nan)
        rows.append({"digest": digest, **values})
    if not rows:
        return pd.DataFrame(columns=list(FROM_IMAGE), index=pd.Index([], name="digest"), dtype=float)
    return pd.DataFrame(rows).set_index("digest")[list(FROM_IMAGE)].astype(float)


def distributions(samples: pd.DataFrame, values: pd.DataFrame, attributes: tuple[str, ...]) -> dict[str, Any]:
    """Per attribute x group x covariate: images measured, mean and quartiles (for the run facts)."""
    out: dict[str, Any] = {}
    for attribute in attributes:
        for group, index in samples.groupby(attribute).groups.items():
            here = values.loc[index]
            entry = {}
            for name in COVARIATES:
                column = here[name].dropna()
                if column.empty:
                    continue
                q1, median, q3 = np.quantile(column.to_numpy(), [0.25, 0.5, 0.75])
                entry[name] = {
                    "n": int(column.size),
                    "mean": float(column.mean()),
                    "q1": float(q1),
                    "median": float(median),
                    "q3": float(q3),
                }
            out.setdefault(attribute, {})[str(group)] = entry
    return out
