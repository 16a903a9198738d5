"""Dataset bias, judged before any model runs (Dominguez-Catena et al., arXiv 2303.15889).

Per attribute of a dataset:

* representational balance: each group's share of the images, and the smallest share with its
  Wilson interval;
* stereotypical association between group and true emotion: Cramér's V of the group x emotion
  table, with an interval from inverting the noncentral chi-square distribution of Pearson's
  statistic (Steiger & Fouladi 1997; Smithson 2003, ch. 4), and the normalised mutual information
  (mutual information over the arithmetic mean of the two entropies).

Where V exceeds STRONG_ASSOCIATION and so does its lower bound, a group's emotion mix differs from
another's enough that unstratified gaps (accuracy_gap, association) mix the group with the emotions
it was photographed showing; a DatasetWarning then points at the stratified criteria.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.stats import chi2, ncx2

from fer_fairness import stats
from fer_fairness.errors import DatasetWarning

STRONG_ASSOCIATION = 0.1  # Cramér's V above which (lower bound included) a run warns
CONFIDENCE = 0.95


@dataclass(frozen=True, kw_only=True)
class Association:
    """Group x true emotion association of one attribute."""

    cramers_v: float
    low: float
    high: float
    confidence: float
    nmi: float
    chi_square: float
    dof: int
    n: int


def _trimmed(table: np.ndarray) -> np.ndarray:
    """Rows and columns with no images say nothing about association (and would divide by zero)."""
    table = np.asarray(table, dtype=float)
    return table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]


def pearson(table: np.ndarray) -> float:
    """Pearson's chi-square statistic of independence (no continuity correction)."""
    table = _trimmed(table)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V: sqrt(chi^2 / (N (min(r, c) - 1))); 0 for a table with one row or column."""
    table = _trimmed(table)
    k = min(table.shape) - 1
    if k < 1:
        return 0.0
    return math.sqrt(pearson(table) / (table.sum() * k))


def cramers_v_interval(table: np.ndarray, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The interval for the population V: the noncentrality values lambda whose chi-square puts the
    observed statistic at each tail, as V = sqrt(lambda / (N (min(r, c) - 1)))."""
    table = _trimmed(table)
    k = min(table.shape) - 1
    if k < 1:
        return 0.0, 0.0
    x, n = pearson(table), table.sum()
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    tail = (1.0 - confidence) / 2

    def bound(target: float) -> float:
        # ncx2.cdf(x; lambda) falls as lambda rises; where even lambda = 0 lies below the target, 0.
        if chi2.cdf(x, dof) <= target:
            return 0.0
        high = max(10.0, 2.0 * x)
        while ncx2.cdf(x, dof, high) > target:
            high *= 2.0
        return brentq(lambda lam: ncx2.cdf(x, dof, lam) - target, 0.0, high, xtol=1e-10)

    low, high = bound(1.0 - tail), bound(tail)
    return min(1.0, math.sqrt(low / (n * k))), min(1.0, math.sqrt(high / (n * k)))


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def normalised_mutual_information(table: np.ndarray) -> float:
    """I(group; emotion) / ((H(group) + H(emotion)) / 2); 0 where either has one value."""
    table = _trimmed(table)
    p = table / table.sum()
    rows, cols = _entropy(p.sum(axis=1)), _entropy(p.sum(axis=0))
    if rows == 0 or cols == 0:
        return 0.0
    mutual = rows + cols - _entropy(p.ravel())
    return max(0.0, mutual) / ((rows + cols) / 2) if mutual > 1e-12 else 0.0  # rounding of equal mixes


def association(table: np.ndarray, *, confidence: float = CONFIDENCE) -> Association:
    """Cramér's V with its interval and the NMI of a group x emotion count table."""
    trimmed = _trimmed(table)
    low, high = cramers_v_interval(trimmed, confidence=confidence)
    return Association(
        cramers_v=cramers_v(trimmed),
        low=low,
        high=high,
        confidence=confidence,
        nmi=normalised_mutual_information(trimmed),
        chi_square=pearson(trimmed) if min(trimmed.shape) > 1 else 0.0,
        dof=max(trimmed.shape[0] - 1, 0) * max(trimmed.shape[1] - 1, 0),
        n=int(trimmed.sum()),
    )


def strong(result: Association) -> bool:
    """The association the run warns about: V and its lower bound both above STRONG_ASSOCIATION."""
    return result.cramers_v > STRONG_ASSOCIATION and result.low > STRONG_ASSOCIATION


def describe(dataset: Any) -> dict[str, Any]:
    """Per attribute: group shares (smallest with its Wilson interval) and the group x emotion
    association; a DatasetWarning for each strong association."""
    samples = dataset.samples
    out: dict[str, Any] = {}
    for attribute in dataset.attributes:
        crossed = samples.groupby([samples[attribute].astype(str), "emotion"]).size().unstack(fill_value=0)
        sizes = crossed.sum(axis=1)
        total = int(sizes.sum())
        smallest = str(sizes.idxmin())
        wilson = stats.wilson_interval(successes=int(sizes[smallest]), n=total, confidence=CONFIDENCE)
        result = association(crossed.to_numpy())
        out[attribute] = {
            "shares": {str(g): int(k) / total for g, k in sizes.items()},
            "smallest": {
                "group": smallest,
                "share": int(sizes[smallest]) / total,
                "low": wilson.low,
                "high": wilson.high,
            },
            "association": asdict(result),
            "strong": strong(result),
        }
        if strong(result):
            warnings.warn(
                DatasetWarning(
                    f"dataset '{dataset.name}': {attribute} and true emotion are associated (Cramér's V = "
                    f"{result.cramers_v:.2f}, {CONFIDENCE:.0%} CI [{result.low:.2f}, {result.high:.2f}], NMI = "
                    f"{result.nmi:.3f}): the groups show different emotion mixes, so unstratified gaps are "
                    "confounded with them; read accuracy_gap_stratified and association_stratified"
                ),
                stacklevel=2,
            )
    return out
