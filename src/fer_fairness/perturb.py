"""Perturbation sweeps: the same faces, each image degraded alike, for ``robustness_gap``.

A perturbation is ``kind:level``, applied identically to every group's images:

* ``brightness:F``: PIL ``ImageEnhance.Brightness`` factor F > 0 (1 leaves the image as it is);
* ``contrast:F``: PIL ``ImageEnhance.Contrast`` factor F > 0 (blends with the image's mean grey);
* ``blur:R``: Gaussian blur of radius (standard deviation) R > 0 pixels;
* ``jpeg:Q``: re-compression as JPEG at quality Q, an integer in 1..95.

Each perturbed image is written once, under ``cache_dir/perturbed/<kind>-<level>/<sha256 of the
source image>.<png|jpg>``, and reused on later runs. Every model's response cache is keyed by image
content, so a warm re-run of a sweep asks no model anything. Pillow is imported only when an image is
perturbed, so the policy can parse perturbations without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fer_fairness._cache import atomic_path

if TYPE_CHECKING:
    from PIL.Image import Image

    from fer_fairness.config import Thresholds
    from fer_fairness.datasets._table import Dataset

KINDS: tuple[str, ...] = ("brightness", "contrast", "blur", "jpeg")
ALLOWED = (
    'a list of distinct "kind:level" entries: brightness:F or contrast:F (an enhancement factor > 0), '
    "blur:R (a Gaussian radius in pixels > 0) or jpeg:Q (a quality, an integer from 1 to 95), "
    'such as ["brightness:0.5", "blur:1.5", "jpeg:20"]'
)


@dataclass(frozen=True)
class Perturbation:
    """One kind of degradation at one level; ``name`` ("blur:1.5") is how tests and reports call it."""

    kind: str
    level: float

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.level:g}"

    @property
    def suffix(self) -> str:
        return ".jpg" if self.kind == "jpeg" else ".png"  # PNG is lossless: only the perturbation changes pixels

    def apply(self, image: Image) -> Image:
        """The perturbed image (JPEG's loss happens on saving; see ``write``)."""
        from PIL import ImageEnhance, ImageFilter

        if self.kind == "brightness":
            return ImageEnhance.Brightness(image).enhance(self.level)
        if self.kind == "contrast":
            return ImageEnhance.Contrast(image).enhance(self.level)
        if self.kind == "blur":
            return image.filter(ImageFilter.GaussianBlur(radius=self.level))
        return image

    def write(self, source: Path, target: Path) -> None:
        """Read ``source``, perturb it, and write ``target`` atomically (the same bytes every time)."""
        from PIL import Image

        with Image.open(source) as opened:
            # Grey stays grey; palettes, alpha and 16-bit modes become RGB, which every kind (and JPEG) handles.
            image = opened.convert("L" if opened.mode in ("L", "1") else "RGB")
        perturbed = self.apply(image)
        with atomic_path(target) as temporary:
            if self.kind == "jpeg":
                perturbed.save(temporary, format="JPEG", quality=int(self.level))
            else:
                perturbed.save(temporary, format="PNG")


def parse(text: object) -> Perturbation | None:
    """``"blur:1.5"`` -> Perturbation; None for anything that is not a valid ``kind:level``."""
    if not isinstance(text, str) or text.count(":") != 1:
        return None
    kind, _, level_text = text.strip().partition(":")
    try:
        level = float(level_text)
    except ValueError:
        return None
    if kind not in KINDS or not math.isfinite(level) or level <= 0:
        return None
    if kind == "jpeg" and (level != int(level) or not 1 <= level <= 95):
        return None
    return Perturbation(kind=kind, level=level)


def valid_sweep(value: object) -> bool:
    """The policy's check of ``perturbations``: a list of valid entries, none repeated (after parsing,
    so "blur:1.5" and "blur:1.50" are one)."""
    if not isinstance(value, list):
        return False
    parsed = [parse(v) for v in value]
    return all(p is not None for p in parsed) and len({p.name for p in parsed}) == len(parsed)


def sweep(thresholds: Thresholds) -> tuple[Perturbation, ...]:
    """The perturbations this run predicts under: none unless robustness_gap is enabled with some."""
    wanted = [thresholds.criterion(c.name).perturbations for c in thresholds.enabled() if c.requires == "perturbations"]
    return tuple(parse(p) for p in dict.fromkeys(p for listed in wanted for p in listed))


def perturbed_dataset(dataset: Dataset, perturbation: Perturbation, cache_dir: Path) -> Dataset:
    """The same samples, each image replaced by its perturbed copy (written once, then reused).

    A sample whose image is absent or cannot be decoded keeps its original file, so a model meets it
    exactly as on the clean run.
    """
    folder = Path(cache_dir) / "perturbed" / perturbation.name.replace(":", "-")
    paths: dict[str, str] = {}
    for path, digest in zip(dataset.samples["path"], dataset.image_digests, strict=True):
        if path in paths:
            continue
        source = Path(dataset.root) / path
        paths[path] = str(source.resolve())
        if not digest:
            continue
        target = folder / f"{digest}{perturbation.suffix}"
        if not target.is_file():
            try:
                perturbation.write(source, target)
            except OSError:  # PIL's UnidentifiedImageError is one: the clean run meets the same file
                continue
        paths[path] = target.name
    samples = dataset.samples.assign(path=dataset.samples["path"].map(paths))
    return replace(dataset, name=f"{dataset.name} ({perturbation.name})", root=folder, samples=samples)
