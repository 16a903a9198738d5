"""Histogram-of-oriented-gradients features: a light, offline embedder for the linear probe."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import skimage
from PIL import Image
from skimage.feature import hog

from fer_fairness.errors import ModelError
from fer_fairness.progress import bar as progress_bar


class HogEmbedder:
    """Grayscale image -> HOG descriptor (L2-Hys block normalisation), resized to a square first."""

    name = "hog"

    def __init__(self, *, image_size: int = 48, cell_size: int = 8, block_size: int = 2, orientations: int = 9) -> None:
        for label, value, low in (
            ("image_size", image_size, 8),
            ("cell_size", cell_size, 2),
            ("block_size", block_size, 1),
            ("orientations", orientations, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ModelError(f"hog: {label} must be an integer >= {low}; got {value!r}")
        if image_size < cell_size * block_size:
            raise ModelError(
                f"hog: image_size ({image_size}) must hold at least one block of {block_size}x{block_size} "
                f"cells of {cell_size} px"
            )
        self.image_size = image_size
        self.cell_size = cell_size
        self.block_size = block_size
        self.orientations = orientations

    def settings(self) -> dict[str, str | int | float]:
        return {
            "image_size": self.image_size,
            "cell_size": self.cell_size,
            "block_size": self.block_size,
            "orientations": self.orientations,
            "block_norm": "L2-Hys",
            "scikit-image": skimage.__version__,  # its hog() defines the numbers
        }

    def embed(
        self, paths: Sequence[Path], *, progress: bool | str, held: Mapping[int, bytes] | None = None
    ) -> np.ndarray:
        """One row of float32 HOG features per image, in the order given.

        ``held`` maps positions in ``paths`` to the bytes already read (to hash them): those images
        are decoded from memory instead of being read again.
        """
        held = held or {}
        rows = []
        with progress_bar(len(paths), "hog features", progress) as bar:
            for position, path in enumerate(paths):
                rows.append(self._describe(Path(path), held.get(position)))
                bar.update()
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    @property
    def dimension(self) -> int:
        cells = self.image_size // self.cell_size
        blocks = cells - self.block_size + 1
        return blocks * blocks * self.block_size * self.block_size * self.orientations

    def _describe(self, path: Path, data: bytes | None = None) -> np.ndarray:
        try:
            # The same decoder either way: Pillow tells formats by content, never by file name.
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                gray = image.convert("L")
                if gray.size != (self.image_size, self.image_size):
                    gray = gray.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                pixels = np.asarray(gray, dtype=np.float32) / 255.0
        except OSError as error:
            raise ModelError(f"hog: cannot read image {path}: {error}") from error
        return hog(
            pixels,
            orientations=self.orientations,
            pixels_per_cell=(self.cell_size, self.cell_size),
            cells_per_block=(self.block_size, self.block_size),
            block_norm="L2-Hys",
            feature_vector=True,
        )
