"""Score-based criteria: what a model's per-label scores say beyond its top answer.

Models that score every label (CLIP zero-shot, ONNX and Hugging Face classifiers, predictions
files with ``score_<emotion>`` columns) are summarised per group once, as sums, sums of squares
and binned counts (``ScoreSummary``), so the statistics cost the same for any number of images.

* ``score_shift`` (per emotion e): the mean score of e on faces whose true emotion is another, group
  minus reference; Welch's interval. Where one person has several faces in a group, that group's
  variance is the cluster-robust (sandwich) variance over persons, and few persons widen it as the
  count criteria's design effects are widened (``stats.small_cluster_factor``).
* ``calibration_gap``: expected calibration error (ECE) of the top-label confidence, B equal-width
  bins (Guo et al. 2017), group minus reference. ECE is biased upward by sampling noise, more so in
  a smaller group, so the plain difference of two ECEs reads a size difference as a calibration
  difference: each bin's gap is debiased (Kumar et al. 2019), and the difference is then
  bias-corrected by a parametric bootstrap over the binned counts, whose standard error gives a
  normal interval (Efron & Tibshirani 1993, ch. 10 and 13.2). Simulated with a calibrated model,
  150 vs 1,500 faces: the 95% interval covers 0 in 95% of 150 runs (the plain ECE difference's
  bootstrap interval: 81%). Brier scores are reported beside it as information. Where one person
  has several faces in a group, that group's bootstrap resamples persons, not bins (below).

A model without scores has no ScoreSummary; its tests are INCONCLUSIVE ("undefined"), never PASS.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_fairness.counts import group_names, subject_codes
from fer_fairness.labels import EMOTIONS, NOT_EVALUATED
from fer_fairness.models._base import SCORE_PREFIX

BINS = 10  # equal-width confidence bins of the ECE (Guo et al. 2017 use 15; 10 keeps bins fuller)
REPLICATES = 2000  # bootstrap draws of the binned counts: enough for a standard error to about 2%


@dataclass(frozen=True, kw_only=True)
class PersonScores:
    """Per-person sums of one grouping, for inference that counts a person once, kept sparse (a
    person has a handful of faces; dense persons x cells arrays are gigabytes at a million images).

    A person is a (group, subject) pair, as in the count tensor: one seen in two groups is one
    cluster per group. Persons are ordered by group, so one group's persons are one contiguous run.
    """

    group: np.ndarray  # (P,) each person's group index, non-decreasing
    person: np.ndarray  # (M,) the person of each (person, true emotion) entry
    emotion: np.ndarray  # (M,) its true emotion (index into the tensor's labels)
    n: np.ndarray  # (M,) scored faces
    sums: np.ndarray  # (M, L) sum of each label's score
    bin_person: np.ndarray  # (B,) the person of each (person, confidence bin) entry
    bin_index: np.ndarray  # (B,) its bin
    bin_count: np.ndarray  # (B,) faces
    bin_confidence: np.ndarray  # (B,) sum of their top-label confidence
    bin_correct: np.ndarray  # (B,) faces whose top-scored label is the true one

    def per_person(self, group: int, emotions: list[int], column: int) -> tuple[np.ndarray, np.ndarray]:
        """(score sums, face counts) per person of ``group`` over faces whose true emotion is in
        ``emotions`` (persons with no such face left out)."""
        lo, hi = np.searchsorted(self.group, [group, group + 1])
        chosen = (self.person >= lo) & (self.person < hi) & np.isin(self.emotion, emotions)
        who = self.person[chosen] - lo
        n = np.bincount(who, weights=self.n[chosen], minlength=hi - lo)
        sums = np.bincount(who, weights=self.sums[chosen, column], minlength=hi - lo)
        return sums[n > 0], n[n > 0]

    def bins(self, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dense (persons, BINS) counts, confidence sums and hits of one group's persons."""
        lo, hi = np.searchsorted(self.group, [group, group + 1])
        chosen = (self.bin_person >= lo) & (self.bin_person < hi)
        where = (self.bin_person[chosen] - lo, self.bin_index[chosen])
        dense = [np.zeros((hi - lo, BINS)) for _ in range(3)]
        for array, values in zip(dense, (self.bin_count, self.bin_confidence, self.bin_correct), strict=True):
            array[where] = values[chosen]  # (person, bin) entries are unique
        return dense[0], dense[1], dense[2]

    def repeats(self, group: int) -> bool:
        """Whether some person of ``group`` has two or more scored faces."""
        lo, hi = np.searchsorted(self.group, [group, group + 1])
        chosen = (self.bin_person >= lo) & (self.bin_person < hi)
        return bool((np.bincount(self.bin_person[chosen] - lo, weights=self.bin_count[chosen]) >= 2).any())


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
    persons: PersonScores | None = None  # None: no person has two scored faces in one group


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
        persons=_person_scores(joined, keep, g=g, t=t, s=s, b=b, confidence=confidence, correct=correct),
    )


def _person_scores(joined, keep, *, g, t, s, b, confidence, correct) -> PersonScores | None:
    """Per-person sums and bins of the kept faces, or None when no person has two in one group."""
    if "subject_id" not in joined.columns or not len(g):
        return None
    codes = subject_codes(joined)[keep]  # the count tensor's persons, by the same rule
    span = int(codes.max()) + 1
    keys, person = np.unique(g.astype(np.int64) * span + codes, return_inverse=True)  # sorted: by group
    if len(keys) == len(g):
        return None  # every person once per group: the independent-face statistics are exact
    person = person.ravel()
    T = int(t.max()) + 1
    cells, entry = np.unique(person * T + t, return_inverse=True)
    entry = entry.ravel()
    sums = np.stack([np.bincount(entry, weights=s[:, k], minlength=len(cells)) for k in range(s.shape[1])], axis=1)
    binned, where = np.unique(person * BINS + b, return_inverse=True)
    where = where.ravel()
    return PersonScores(
        group=(keys // span).astype(np.int64),
        person=(cells // T).astype(np.int64),
        emotion=(cells % T).astype(np.int64),
        n=np.bincount(entry, minlength=len(cells)).astype(np.int64),
        sums=sums,
        bin_person=(binned // BINS).astype(np.int64),
        bin_index=(binned % BINS).astype(np.int64),
        bin_count=np.bincount(where, minlength=len(binned)).astype(np.int64),
        bin_confidence=np.bincount(where, weights=confidence, minlength=len(binned)),
        bin_correct=np.bincount(where, weights=correct, minlength=len(binned)).astype(np.int64),
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


def _normal_measure(
    *, metric, estimate, se_at, n, rates, tolerance, test_method, unit_variance, note, inference="independent images"
):
    """A difference judged on +-tolerance with a normal interval estimate +- z se (at any level).

    ``se_at(confidence)``: the standard error an interval at that level uses (clustered groups widen
    more at higher levels); the p-value reads it at 95%, as the count criteria's Rao-Scott test does.
    """
    from scipy.stats import norm

    from fer_fairness.criteria.measures import Measure, _settling_n
    from fer_fairness.criteria.verdict import Band

    def interval_at(confidence: float, *, exact: bool = True):
        z, se = float(norm.isf((1.0 - confidence) / 2)), se_at(confidence)
        return estimate - z * se, estimate + z * se, confidence

    def power_at(alpha: float) -> float:
        se = se_at(1.0 - alpha)
        if not se > 0:
            return 0.0
        z = float(norm.isf(alpha / 2))
        return float(norm.sf(z - tolerance / se) + norm.cdf(-z - tolerance / se))

    def needed_n_at(alpha: float, power: float) -> float:
        distance = abs(estimate) - tolerance if abs(estimate) > tolerance else tolerance - abs(estimate)
        return _settling_n(distance=distance, unit_variance=unit_variance, alpha=alpha, power=power)

    se = se_at(0.95)
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
        inference=inference,
        note=note,
    )


def _undefined(metric: str, why: str, tolerance: float, n: dict[str, int]):
    from fer_fairness.criteria.measures import _undefined as undefined
    from fer_fairness.criteria.verdict import Band

    band = Band(low=-tolerance, high=tolerance)
    return undefined(metric, why, band=band, null=0.0, threshold=f"|difference| <= {tolerance:g}", n=n, rates={})


def sandwich_variance(sums: np.ndarray, n: np.ndarray) -> float:
    """Cluster-robust variance of a mean score from per-person score sums and face counts.

    The ratio estimator's sandwich variance, K / (K - 1) * sum_p (S_p - mean * n_p)^2 / N^2 over the K
    persons (Rao & Scott 1992; Cameron & Miller 2015): Welch's s^2 / N exactly when each has one face.
    """
    k, total = len(n), float(np.sum(n))
    if k < 2:
        return math.nan
    mean = float(np.sum(sums)) / total
    return k / (k - 1) * float(((sums - mean * n) ** 2).sum()) / total**2


@dataclass(frozen=True)
class _GroupMean:
    """One group's mean score and the variance of that mean, clustered where persons repeat."""

    count: int
    mean: float
    variance: float  # s^2, the per-face variance (Welch's)
    deff: float = 1.0  # sandwich variance over Welch's, never below 1 (as stats.design_effect)
    persons: int = 0

    def variance_of_mean(self, confidence: float) -> float:
        if self.deff <= 1.0:
            return self.variance / self.count
        from fer_fairness.stats import small_cluster_factor  # scipy: only when a criterion runs

        factor = self.deff * small_cluster_factor(clusters=self.persons, confidence=confidence)
        return self.variance / self.count * factor


def _group_mean(summary: ScoreSummary, g: int, others: list[int], column: int) -> _GroupMean:
    count = int(summary.n[g, others].sum())
    total, squares = float(summary.sums[g, others, column].sum()), float(summary.squares[g, others, column].sum())
    mean = total / count if count else math.nan
    variance = max(squares - count * mean**2, 0.0) / (count - 1) if count > 1 else math.nan
    if summary.persons is None or count < 2:
        return _GroupMean(count, mean, variance)
    sums, n = summary.persons.per_person(g, others, column)
    if not (n >= 2).any() or not variance > 0:
        return _GroupMean(count, mean, variance)  # no person repeats here: Welch's variance is exact
    # Never below the independent variance: a person's faces never count for more than themselves,
    # as the count criteria's design effects (stats.design_effect) are floored at 1.
    deff = max(1.0, sandwich_variance(sums, n) / (variance / count))
    return _GroupMean(count, mean, variance, deff=deff, persons=len(n))


def score_shift(table, group: str, reference: str, emotion: str, config):
    """The mean score of ``emotion`` on faces not showing it, group minus reference (Welch)."""
    metric = f"mean {emotion} score on faces not showing it, difference"
    tolerance, summary, t = config.threshold, table.scores, table.tensor
    if summary is None:
        return _undefined(metric, f"model {table.model} gives no per-label scores", tolerance, {})
    if emotion not in summary.labels:
        return _undefined(metric, f"model {table.model} gives no {emotion} score", tolerance, {})
    column, others = summary.labels.index(emotion), [k for k, e in enumerate(t.labels) if e != emotion]
    moments = {name: _group_mean(summary, t.groups.index(name), others, column) for name in (group, reference)}
    n = {name: m.count for name, m in moments.items()}
    small = [name for name, m in moments.items() if m.count < 2]
    if small:
        return _undefined(
            metric, f"fewer than 2 scored faces not showing {emotion} in {', '.join(small)}", tolerance, n
        )
    a, b = moments[group], moments[reference]
    clustered = a.deff > 1.0 or b.deff > 1.0
    inference = "independent images"
    if clustered:
        inference = f"clustered by subject (design effect {a.deff:.2f}, {b.deff:.2f}; sandwich variance by subject)"
    return _normal_measure(
        metric=metric,
        estimate=a.mean - b.mean,
        se_at=lambda confidence: math.sqrt(a.variance_of_mean(confidence) + b.variance_of_mean(confidence)),
        n=n,
        rates={group: a.mean, reference: b.mean},
        tolerance=tolerance,
        test_method="Welch (normal approximation)",
        unit_variance=a.variance * a.deff + b.variance * b.deff,
        note="",
        inference=inference,
    )


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


def _person_replicates(count: np.ndarray, confidence: np.ndarray, correct: np.ndarray, rng: np.random.Generator):
    """ECE of REPLICATES redraws of one group's persons (rows: each person's binned faces), K drawn with
    replacement from its K persons: the cluster bootstrap (Davison & Hinkley 1997, sec. 3.8), which
    keeps each person's faces together, so a person-level tilt shows in the spread as it should.

    Chosen over keeping the note because it stays cheap: a replicate is a (K,) weight vector times the
    (K, BINS) per-person bins, REPLICATES x K weights in all, drawn in slices of about 2M (measured:
    about 1 s for 20,000 persons, 5 s for 180,000; the datasets that name subjects have hundreds)."""
    k = len(count)
    out = np.empty(REPLICATES)
    step = max(1, min(REPLICATES, 2_000_000 // k))
    for start in range(0, REPLICATES, step):
        rows = min(step, REPLICATES - start)
        picks = rng.integers(0, k, size=(rows, k)) + k * np.arange(rows)[:, None]
        weights = np.bincount(picks.ravel(), minlength=rows * k).reshape(rows, k).astype(float)
        out[start : start + rows] = ece(weights @ count, weights @ confidence, weights @ correct, debiased=True)
    return out


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
    persons = summary.persons
    clustered = {g: persons is not None and persons.repeats(g) for g in (g1, g0)}
    draws, sizes = [], {}
    for name, g in ((group, g1), (reference, g0)):
        if clustered[g]:
            per_person = persons.bins(g)
            sizes[name] = len(per_person[0])
            draws.append(_person_replicates(*per_person, rng))
        else:  # no person repeats here: the binned faces are independent, the parametric redraw exact
            draws.append(_replicates(c[g], summary.bin_confidence[g], summary.bin_correct[g], rng))
    raw = float(observed[0] - observed[1])
    difference = draws[0] - draws[1]
    estimate = 2 * raw - float(difference.mean())  # minus the bootstrap's estimate of the bias
    test_method = f"parametric bootstrap over {BINS} bins ({REPLICATES} draws), bias-corrected, normal interval"
    inference = "independent images"
    if sizes:
        from fer_fairness.stats import small_cluster_factor  # scipy: only when a criterion runs

        # A bootstrap over K persons understates the spread when K is small, as a sandwich variance
        # does: the same t_{K-1} widening as the count criteria's (Cameron & Miller 2015, sec. VI).
        spread = {name: float(np.var(d, ddof=1)) for name, d in zip((group, reference), draws, strict=True)}

        def se_at(confidence: float) -> float:
            widen = {name: small_cluster_factor(clusters=k, confidence=confidence) for name, k in sizes.items()}
            return math.sqrt(sum(v * widen.get(name, 1.0) for name, v in spread.items()))

        test_method = (
            f"bootstrap ({REPLICATES} draws) resampling persons where they repeat, {BINS} bins elsewhere, "
            "bias-corrected, normal interval"
        )
        resampled = ", ".join(f"{k} in {name}" for name, k in sizes.items())
        inference = f"clustered by subject (persons resampled by the bootstrap: {resampled})"
    else:
        se = float(difference.std(ddof=1))

        def se_at(confidence: float) -> float:
            return se

    brier = {name: summary.brier[g] / n[name] for name, g in ((group, g1), (reference, g0))}
    return _normal_measure(
        metric=metric,
        estimate=estimate,
        se_at=se_at,
        n=n,
        rates={group: float(observed[0]), reference: float(observed[1])},
        tolerance=tolerance,
        test_method=test_method,
        unit_variance=float(np.var(draws[0], ddof=1) * n[group] + np.var(draws[1], ddof=1) * n[reference]),
        note=f"plain ECE {plain[0]:.3f} vs {plain[1]:.3f}; Brier score {brier[group]:.3f} vs {brier[reference]:.3f}",
        inference=inference,
    )
