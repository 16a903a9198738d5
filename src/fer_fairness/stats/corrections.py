"""Multiple-comparison corrections for a family of tests and the matching interval level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.stats import false_discovery_control

from ._validation import check_alpha

Correction = Literal["holm", "bh"]
_METHODS = ("bh", "holm")


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")


def _holm(p: np.ndarray) -> np.ndarray:
    # Holm 1979 step-down. Hand-written because statsmodels' multipletests(method="holm") runs
    # gc.collect() on every call (tens of ms with a large heap), which dominated simulations.
    order = np.argsort(p)
    stepped = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def adjust_p_values(*, p_values: Sequence[float], method: Correction) -> np.ndarray:
    """Holm (FWER) or Benjamini-Hochberg (FDR) adjusted p-values.

    NaN entries (comparisons that were not tested) stay NaN and do not count toward the family.
    """
    _check_method(method)
    raw = np.asarray(p_values, dtype=float).reshape(-1)
    tested = ~np.isnan(raw)
    if np.any((raw[tested] < 0) | (raw[tested] > 1)):
        raise ValueError(f"p_values must lie in [0, 1] or be NaN, got {raw.tolist()!r}")
    # Holm 1979 step-down; Benjamini & Hochberg 1995 step-up.
    adjusted = np.full_like(raw, np.nan)
    if tested.any():
        values = raw[tested]
        # Benjamini & Hochberg 1995 step-up, as scipy implements it.
        adjusted[tested] = _holm(values) if method == "holm" else false_discovery_control(values, method="bh")
    return adjusted


def corrected_confidence(*, alpha: float, family_size: int, method: Correction, n_rejected: int) -> float:
    """Confidence level for intervals reported alongside corrected tests.

    Holm: the Bonferroni level 1 - alpha / m, simultaneous over the family. BH: the
    false-coverage-rate level 1 - max(R, 1) * alpha / m for the R selected comparisons
    (Benjamini & Yekutieli 2005). An empty family gives 1 - alpha.
    """
    _check_method(method)
    check_alpha(alpha)
    if family_size < 0 or not 0 <= n_rejected <= max(family_size, 0):
        raise ValueError(
            f"need 0 <= n_rejected <= family_size, got n_rejected={n_rejected!r}, family_size={family_size!r}"
        )
    # Bonferroni for Holm; Benjamini & Yekutieli 2005 false coverage rate for BH.
    if family_size == 0:
        return 1.0 - alpha
    if method == "holm":
        return 1.0 - alpha / family_size
    return 1.0 - max(n_rejected, 1) * alpha / family_size
