"""Score-based criteria: what a model's per-label scores say beyond its top answer.

Models that score every label (CLIP zero-shot, ONNX and Hugging Face classifiers, predictions
files with ``score_<emotion>`` columns) are summarised per group once, as sums, sums of squares
and binned counts (``ScoreSummary``), so the statistics cost the same for any number of images.

* ``score_shift`` (per emotion e): the mean score of e on faces whose true emotion is another, group
  minus reference; Welch's interval (faces taken as independent; repeated persons are not modelled).
* ``calibration_gap``: expected calibration error (ECE) of the top-label confidence, B equal-width
  bins (Guo et al. 2017), group minus reference. ECE is biased upward by sampling noise, more so in
  a smaller group, so the plain difference of two ECEs reads a size difference as a calibration
  difference: each bin's gap is debiased (Kumar et al. 2019), and the difference is then
  bias-corrected by a parametric bootstrap over the binned counts, whose standard error gives a
  normal interval (Efron & Tibshirani 1993, ch. 10 and 13.2). Simulated with a calibrated model,
  150 vs 1,500 faces: the 95% interval covers 0 in 95% of 150 runs (the plain ECE difference's
  bootstrap interval: 81%). Brier scores are reported beside it as information.

A model without scores has no ScoreSummary; its tests are INCONCLUSIVE ("undefined"), never PASS.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_fairness.counts import group_names
from fer_fairness.labels import EMOTIONS, NOT_EVALUATED
from fer_fairness.models._base import SCORE_PREFIX

BINS = 10  # equal-width confidence bins of the ECE (Guo et al. 2017 use 15; 10 keeps bins fuller)
REPLICATES = 2000  # bootstrap draws of the binned counts: enough for a standard error to about 2%


@dataclass(frozen=True, kw_only=True)
class ScoreSummary:
    """Per-group score statistics of one model x dataset x grouping (groups in the tensor's order).

    Only evaluated faces whose every score is a number count (a non-answer usually has none).
    """

    labels: tuple[str, ...]  # the emotions the model scores, in EMOTIONS order
    n: np.ndarray  # (G, T) scored faces per group and true emotion (T: the tensor's labels)
    sums: np.ndarray  # (G, T, L) sum of each label's score
    squares: np.ndarray  # (G, T, L) sum of its square
    bin_count: np.ndarray  # (G, BINS) faces whose top-label confidence falls in each bin
    bin_confidence: np.ndarray  # (G, BINS) sum of that confidence
    bin_correct: np.ndarray  # (G, BINS) faces whose top-scored label is the true one
    brier: np.ndarray  # (G,) sum of the multi-class Brier score (Brier 1950) per face
    brier_squares: np.ndarray  # (G,) sum of its square


def with_scores(joined: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The joined samples and outcomes with the model's ``score_<emotion>`` columns, where it gives any."""
    columns = [f"{SCORE_PREFIX}{e}" for e in EMOTIONS if f"{SCORE_PREFIX}{e}" in outcomes.columns]
    if not columns:
        return joined
    scores = outcomes[["sample_id", *columns]]
    return joined.drop(columns=[c for c in columns if c in joined.columns]).merge(scores, on="sample_id", how="left")


def summarise(
    joined: pd.DataFrame, *, attributes: tuple[str, ...], groups: tuple[str, ...], labels: tuple[str, ...]
) -> ScoreSummary | None:
    """The ScoreSummary of one grouping, or None when the frame has no score columns."""
    scored = tuple(e for e in EMOTIONS if f"{SCORE_PREFIX}{e}" in joined.columns)
    if not scored:
        return None
    group = group_names(joined, attributes)
    s = joined[[f"{SCORE_PREFIX}{e}" for e in scored]].to_numpy(dtype=float)
    keep = (joined["outcome"] != NOT_EVALUATED).to_numpy() & np.isfinite(s).all(axis=1)
    g = pd.Categorical(group, categories=groups).codes[keep]
    t = pd.Categorical(joined["emotion"], categories=labels).codes[keep]
    s = s[keep]
    G, T, L = len(groups), len(labels), len(scored)
    n = np.zeros((G, T), dtype=np.int64)
    np.add.at(n, (g, t), 1)
    sums, squares = np.zeros((G, T, L)), np.zeros((G, T, L))
    np.add.at(sums, (g, t), s)
    np.add.at(squares, (g, t), s**2)
    top = s.argmax(axis=1)
    confidence = s[np.arange(len(s)), top]
    truth = np.array([scored.index(labels[k]) if labels[k] in scored else -1 for k in t], dtype=np.int64)
    correct = (top == truth).astype(float)
    b = np.clip((confidence * BINS).astype(np.int64), 0, BINS - 1)  # a confidence of 1 is the top bin
    counts, conf, hits = np.zeros((G, BINS)), np.zeros((G, BINS)), np.zeros((G, BINS))
    np.add.at(counts, (g, b), 1)
    np.add.at(conf, (g, b), confidence)
    np.add.at(hits, (g, b), correct)
    onehot = np.zeros_like(s)
    onehot[truth >= 0, truth[truth >= 0]] = 1.0
    per_face = ((s - onehot) ** 2).sum(axis=1)
    brier, brier_squares = np.zeros(G), np.zeros(G)
    np.add.at(brier, g, per_face)
    np.add.at(brier_squares, g, per_face**2)
    return ScoreSummary(
        labels=scored,
        n=n,
        sums=sums,
        squares=squares,
        bin_count=counts.astype(np.int64),
        bin_confidence=conf,
        bin_correct=hits.astype(np.int64),
        brier=brier,
        brier_squares=brier_squares,
    )


def ece(count: np.ndarray, confidence: np.ndarray, correct: np.ndarray, *, debiased: bool = False) -> np.ndarray:
    """Expected calibration error from binned counts (last axis: bins): sum_b n_b |acc_b - conf_b| / N.

    ``debiased``: each bin's squared gap less the unbiased variance of its accuracy, acc (1 - acc) /
    (n_b - 1), floored at 0, before the square root (the debiased plug-in of Kumar et al. 2019). The
    plain ECE of a perfectly calibrated model grows as its bins empty (simulated, 10 bins: about 0.05
    more at 150 faces than at 1,500),
    so without this a small group would look worse calibrated for its size alone.
    """
    count = np.asarray(count, dtype=float)
    accuracy = np.divide(correct, count, out=np.zeros(count.shape), where=count > 0)
    mean_confidence = np.divide(confidence, count, out=np.zeros(count.shape), where=count > 0)
    gap = np.abs(accuracy - mean_confidence)
    if debiased:
        variance = np.divide(accuracy * (1 - accuracy), count - 1, out=np.zeros(count.shape), where=count > 1)
        gap = np.sqrt(np.maximum(gap**2 - variance, 0.0))
    total = count.sum(axis=-1)
    return np.divide((count * gap).sum(axis=-1), total, out=np.full(np.shape(total), np.nan), where=total > 0)


# -- measures --------------------------------------------------------------------------------------


def _normal_measure(*, metric, estimate, se, group, reference, n, rates, tolerance, test_method, unit_variance, note):
    """A difference judged on +-tolerance with a normal interval estimate +- z se (at any level)."""
    from scipy.stats import norm

    from fer_fairness.criteria.measures import Measure, _settling_n
    from fer_fairness.criteria.verdict import Band

    def interval_at(confidence: float, *, exact: bool = True):
        z = float(norm.isf((1.0 - confidence) / 2))
        return estimate - z * se, estimate + z * se, confidence

    def power_at(alpha: float) -> float:
        if not se > 0:
            return 0.0
        z = float(norm.isf(alpha / 2))
        return float(norm.sf(z - tolerance / se) + norm.cdf(-z - tolerance / se))

    def needed_n_at(alpha: float, power: float) -> float:
        distance = abs(estimate) - tolerance if abs(estimate) > tolerance else tolerance - abs(estimate)
        return _settling_n(distance=distance, unit_variance=unit_variance, alpha=alpha, power=power)

    p_value = float(2 * norm.sf(abs(estimate) / se)) if se > 0 else (1.0 if estimate == 0 else 0.0)
    return Measure(
        metric=metric,
        estimate=estimate,
        p_value=p_value,
        test_method=test_method,
        band=Band(low=-tolerance, high=tolerance),
        null=0.0,
        threshold=f"|difference| <= {tolerance:g}",
        interval_at=interval_at,
        power_at=power_at,
        needed_n_at=needed_n_at,
        n=n,
        rates=rates,
        inference="independent images",
        note=note,
    )


def _undefined(metric: str, why: str, tolerance: float, n: dict[str, int]):
    from fer_fairness.criteria.measures import _undefined as undefined
    from fer_fairness.criteria.verdict import Band

    band = Band(low=-tolerance, high=tolerance)
    return undefined(metric, why, band=band, null=0.0, threshold=f"|difference| <= {tolerance:g}", n=n, rates={})


def score_shift(table, group: str, reference: str, emotion: str, config):
    """The mean score of ``emotion`` on faces not showing it, group minus reference (Welch)."""
    metric = f"mean {emotion} score on faces not showing it, difference"
    tolerance, summary, t = config.threshold, table.scores, table.tensor
    if summary is None:
        return _undefined(metric, f"model {table.model} gives no per-label scores", tolerance, {})
    if emotion not in summary.labels:
        return _undefined(metric, f"model {table.model} gives no {emotion} score", tolerance, {})
    column, others = summary.labels.index(emotion), [k for k, e in enumerate(t.labels) if e != emotion]
    moments = {}
    for name in (group, reference):
        g = t.groups.index(name)
        count = int(summary.n[g, others].sum())
        total, squares = float(summary.sums[g, others, column].sum()), float(summary.squares[g, others, column].sum())
        mean = total / count if count else math.nan
        variance = max(squares - count * mean**2, 0.0) / (count - 1) if count > 1 else math.nan
        moments[name] = (count, mean, variance)
    n = {name: m[0] for name, m in moments.items()}
    small = [name for name, (count, _, _) in moments.items() if count < 2]
    if small:
        return _undefined(
            metric, f"fewer than 2 scored faces not showing {emotion} in {', '.join(small)}", tolerance, n
        )
    (n1, m1, v1), (n0, m0, v0) = moments[group], moments[reference]
    se = math.sqrt(v1 / n1 + v0 / n0)
    return _normal_measure(
        metric=metric,
        estimate=m1 - m0,
        se=se,
        group=group,
        reference=reference,
        n=n,
        rates={group: m1, reference: m0},
        tolerance=tolerance,
        test_method="Welch (normal approximation)",
        unit_variance=v1 + v0,
        note=_clustered_note(t),
    )


def _clustered_note(t) -> str:
    # The score criteria keep no per-person sums, so repeated images of one person are not shrunk
    # to effective counts as the count criteria do: said, rather than silently overstated.
    if t.clusters is None:
        return ""
    return "images of one person are counted as independent here (no per-person score sums); "


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


def _replicates(count: np.ndarray, confidence: np.ndarray, correct: np.ndarray, rng: np.random.Generator):
    """ECE of REPLICATES parametric redraws of one group's bins: bin sizes multinomial, hits binomial at
    each bin's observed accuracy, each bin's mean confidence held (it varies little within a bin)."""
    total = int(count.sum())
    drawn = rng.multinomial(total, count / total, size=REPLICATES)
    accuracy = np.divide(correct, count, out=np.zeros(BINS), where=count > 0)
    mean_confidence = np.divide(confidence, count, out=np.zeros(BINS), where=count > 0)
    hits = rng.binomial(drawn, accuracy)
    return ece(drawn, drawn * mean_confidence, hits, debiased=True)


def calibration_gap(table, group: str, reference: str, _detail, config):
    """ECE of the top-label confidence, group minus reference, bias-corrected, with a bootstrap interval."""
    metric = "expected calibration error difference"
    tolerance, summary, t = config.threshold, table.scores, table.tensor
    if summary is None:
        return _undefined(metric, f"model {table.model} gives no per-label scores", tolerance, {})
    g1, g0 = t.groups.index(group), t.groups.index(reference)
    c = summary.bin_count
    n = {group: int(c[g1].sum()), reference: int(c[g0].sum())}
    empty = [name for name, count in n.items() if count == 0]
    if empty:
        return _undefined(metric, f"no scored faces in {' or '.join(empty)}", tolerance, n)
    binned = (c[[g1, g0]], summary.bin_confidence[[g1, g0]], summary.bin_correct[[g1, g0]])
    observed, plain = ece(*binned, debiased=True), ece(*binned)
    rng = np.random.default_rng(_seed(table.model, table.dataset, t.attribute, group, reference))
    draws = [_replicates(c[g], summary.bin_confidence[g], summary.bin_correct[g], rng) for g in (g1, g0)]
    raw = float(observed[0] - observed[1])
    difference = draws[0] - draws[1]
    estimate = 2 * raw - float(difference.mean())  # minus the bootstrap's estimate of the bias
    se = float(difference.std(ddof=1))
    brier = {name: summary.brier[g] / n[name] for name, g in ((group, g1), (reference, g0))}
    return _normal_measure(
        metric=metric,
        estimate=estimate,
        se=se,
        group=group,
        reference=reference,
        n=n,
        rates={group: float(observed[0]), reference: float(observed[1])},
        tolerance=tolerance,
        test_method=f"parametric bootstrap over {BINS} bins ({REPLICATES} draws), bias-corrected, normal interval",
        unit_variance=float(np.var(draws[0], ddof=1) * n[group] + np.var(draws[1], ddof=1) * n[reference]),
        note=_clustered_note(t)
        + (f"plain ECE {plain[0]:.3f} vs {plain[1]:.3f}; Brier score {brier[group]:.3f} vs {brier[reference]:.3f}"),
    )
