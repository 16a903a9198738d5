"""Argument checks shared by the statistics modules; messages say parameter, allowed, given."""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def check_count(*, successes: float, n: float, names: tuple[str, str] = ("successes", "n"), real: bool = False) -> None:
    """Whole counts, or with ``real`` any finite non-negative numbers (effective counts)."""
    kind, words = (numbers.Real, "a finite number") if real else (numbers.Integral, "an integer")
    for name, value in zip(names, (successes, n), strict=True):
        if not isinstance(value, kind) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{name} must be {words}, got {value!r}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    if successes > n:
        raise ValueError(f"{names[0]} must be <= {names[1]} ({n}), got {successes!r}")


def check_count_array(array: np.ndarray, *, name: str, ndim: int) -> np.ndarray:
    """Return array as int64 after checking shape and that it holds non-negative whole numbers."""
    array = np.asarray(array)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if array.size and (np.any(array < 0) or np.any(array != np.round(array))):
        raise ValueError(f"{name} must hold non-negative integer counts, got {array!r}")
    return array.astype(np.int64)
