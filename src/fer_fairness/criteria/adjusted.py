"""adjusted_gap: the accuracy gap with image covariates and the true emotion held equal.

Unlike every other built-in criterion this one fits per-sample rows (``Table.rows``), not the
count tensor: covariates are continuous. It stays cheap: one logistic regression per pair of groups.

The model, fitted on the evaluated faces of the pair's two groups only (so it describes exactly the
population the unadjusted accuracy_gap compares, and another group's photos cannot change this
pair's answer), is

    logit P(correct) = b0 + b_g [group] + sum_k b_k z_k + sum_e c_e [emotion = e]

with z_k the standardised covariates. The group's adjusted effect is put on the accuracy-difference
scale by marginal standardisation (g-computation): the mean predicted accuracy with every face of
the pair set to the group, minus the same with every face set to the reference,
over the pair's pooled covariate and emotion mix. So it is judged on the same band as the
unadjusted gap: "a gap of at most 5 points if both groups had the same photos and expressions".

Its interval is the delta method on the linearisation of that mean (Graubard & Korn 1999,
"Predictive margins with survey data", Biometrics 55:652; as Stata's ``margins, vce(unconditional)``):
each person's influence combines the sandwich (robust, clustered by subject) influence of the
coefficients and the sampling of the covariate mix itself; z-interval on the difference scale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from fer_fairness.covariates import COVARIATES
from fer_fairness.criteria.measures import Interval, Measure, _settling_n, _undefined
from fer_fairness.criteria.verdict import Band

METRIC = "accuracy difference adjusted for image covariates and emotion"
# Below this many evaluated faces in either group the fit is not attempted (min_group_size usually
# stops such pairs first; this guards direct callers).
MIN_ROWS = 10


def _words(unadjusted: float, adjusted: float, tolerance: float) -> str:
    """Plain words on what adjustment did, read from the two point estimates against the band."""
    outside_before, outside_after = abs(unadjusted) > tolerance, abs(adjusted) > tolerance
    if outside_before and not outside_after:
        return "the covariates explain the disparity"
    if outside_before and outside_after:
        return "the disparity survives adjustment"
    if outside_after:
        return "adjustment reveals a disparity the covariates hid"
    return "no disparity beyond the band, adjusted or not"


def _selected(column: pd.Series, wanted) -> np.ndarray:
    """Where ``column`` equals ``wanted``: by category code when categorical (no per-row object compare)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        code = column.cat.categories.get_indexer([wanted])[0]
        codes = column.cat.codes.to_numpy()
        return codes == code if code >= 0 else np.zeros(len(column), dtype=bool)
    return (column == wanted).to_numpy(dtype=bool)


def _where(mask: np.ndarray) -> np.ndarray | None:
    """The positions where ``mask`` holds, or None where it holds everywhere (then nothing is copied)."""
    return None if mask.all() else np.flatnonzero(mask)


def _take(values: np.ndarray, at: np.ndarray | None) -> np.ndarray:
    """``values`` at positions ``at`` (from ``_where``): the array itself where ``at`` is everything."""
    return values if at is None else values[at]


def _span(values: np.ndarray, at: np.ndarray | None) -> tuple[float, float]:
    """Least and greatest of ``values`` at positions ``at``."""
    chosen = _take(values, at)
    return float(chosen.min()), float(chosen.max())


def _clusters(ids: np.ndarray) -> np.ndarray:
    """Codes 0..K-1 of the K distinct ``ids``. Non-negative integer ids (the pipeline's person codes)
    are numbered through a table of seen ids, an order of magnitude faster than hashing them."""
    if ids.dtype.kind in "iu" and len(ids) and ids.min() >= 0 and ids.max() < 4 * len(ids) + 1024:
        seen = np.zeros(int(ids.max()) + 1, dtype=bool)
        seen[ids] = True
        return (np.cumsum(seen) - 1)[ids]
    return pd.factorize(ids)[0]


def _coded(column: pd.Series, keep: np.ndarray | None) -> tuple[np.ndarray, list]:
    """Integer codes (0..k-1) of ``column`` at rows ``keep`` and the value of each code; missing is a value too."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, values = _take(column.cat.codes.to_numpy(), keep).astype(np.intp), list(column.cat.categories)
    else:
        codes, uniques = pd.factorize(_take(column.to_numpy(), keep), sort=True)
        values = list(uniques)
    if len(codes) and codes.min() < 0:
        codes = np.where(codes < 0, len(values), codes)
        values.append(math.nan)
    return codes, values


def adjusted_gap(
    rows: pd.DataFrame | None, *, group: str, reference: str, tolerance: float, covariates=COVARIATES
) -> Measure:
    """The adjusted accuracy difference of ``group`` against ``reference`` (see the module docstring).

    ``rows``: one row per evaluated face with ``group``, ``emotion``, ``correct`` (bool), ``subject_id``
    and the covariate columns (NaN where unknown). Degenerate fits are undefined, with the reason.
    """
    band, threshold = Band(low=-tolerance, high=tolerance), f"|difference| <= {tolerance:g}"

    def undefined(why: str, n=None, rates=None, note: str = "") -> Measure:
        measure = _undefined(METRIC, why, band=band, null=0.0, threshold=threshold, n=n or {}, rates=rates or {})
        return Measure(**{**measure.__dict__, "note": note})

    if rows is None:
        return undefined("this run has no per-sample rows for the table (a table built from counts alone)")
    # Arrays over the pair's rows only, selected by codes: pandas operations on million-row frames
    # (isin, dropna, groupby) were most of this criterion's cost.
    in_group = _selected(rows["group"], group)
    keep = _where(in_group | _selected(rows["group"], reference))
    is_group = _take(in_group, keep)
    correct = _take(rows["correct"].to_numpy(dtype=bool), keep)
    pair = len(is_group)
    n = {group: int(is_group.sum()), reference: int(pair - is_group.sum())}
    right_in_group = int(np.count_nonzero(correct & is_group))
    rates = {
        group: right_in_group / n[group] if n[group] else math.nan,
        reference: (int(np.count_nonzero(correct)) - right_in_group) / n[reference] if n[reference] else math.nan,
    }
    unadjusted = rates[group] - rates[reference]
    if min(n.values()) < MIN_ROWS:
        return undefined(f"fewer than {MIN_ROWS} evaluated faces in a group", n, rates)

    notes = []
    # views, not copies, where the pair is every face (a float column's to_numpy is the column itself)
    values = {c: _take(rows[c].to_numpy(dtype=float), keep) for c in covariates if c in rows.columns}
    present = [c for c in covariates if c in values and not np.isnan(values[c]).all()]
    if not present:
        return undefined("no image covariates are known for these faces (images absent)", n, rates)
    complete = np.ones(pair, dtype=bool)
    for c in present:
        complete &= ~np.isnan(values[c])
    if not complete.all():
        notes.append(f"{int((~complete).sum())} face(s) without covariates left out of the fit")
    # An emotion only one group shows gives no within-emotion comparison: left out, and said so.
    emotion, emotion_values = _coded(rows["emotion"], keep)
    kinds = len(emotion_values)
    in_group_of = np.bincount(emotion[complete & is_group], minlength=kinds) > 0
    in_reference_of = np.bincount(emotion[complete & ~is_group], minlength=kinds) > 0
    alone = sorted(emotion_values[e] for e in np.flatnonzero(in_group_of ^ in_reference_of))
    if alone:
        notes.append(f"emotions only one group shows, left out: {', '.join(alone)}")
    shown = _where(complete & (in_group_of & in_reference_of)[emotion])
    total = pair if shown is None else len(shown)
    if total == 0:
        return undefined("the two groups share no emotion with covariates known", n, rates, "; ".join(notes))
    is_group, correct, emotion = _take(is_group, shown), _take(correct, shown), _take(emotion, shown)
    # A covariate that does not vary within the pair cannot confound it (e.g. one resolution for all).
    spans = {c: _span(values[c], shown) for c in present}
    constant = [c for c in present if spans[c][0] == spans[c][1]]
    used = [c for c in present if c not in constant]
    if constant:
        notes.append(f"constant here, not adjusted for: {', '.join(constant)}")
    # Where one emotion's faces are all right (or all wrong) in both groups, the fit's limit predicts
    # exactly that for every face of it whatever the group: those faces add 0 to the difference and
    # nothing to its variance, so they enter the mean but not the fit (no infinite coefficient).
    faces, right = np.bincount(emotion, minlength=kinds), np.bincount(emotion, weights=correct, minlength=kinds)
    fit = ~((right == 0) | (right == faces))[emotion]
    # The fitted faces sorted by emotion once (stable): the design's dummies are then runs of rows.
    # ``order`` holds each fitted face's place among the ``total`` faces, for what is summed by person.
    order = np.flatnonzero(fit)
    # (as the smallest unsigned type: numpy's stable sort of 8- or 16-bit integers is a radix sort)
    order = order[np.argsort(emotion[order].astype(np.min_scalar_type(kinds)), kind="stable")]
    y = correct[order].astype(float)
    if len(y) == 0 or y.min() == y.max():
        return undefined(
            "every face of the pair is right (or wrong) within its emotion: no variation to fit",
            n,
            rates,
            "; ".join(notes),
        )

    at = order if shown is None else shown[order]  # the fitted faces' places among the pair's
    dense = np.empty((len(y), 2 + len(used)), order="F")
    dense[:, 0], dense[:, 1] = 1.0, is_group[order]
    for j, c in enumerate(used, start=2):
        column = dense[:, j]  # contiguous (column-major): standardised where it lies
        np.take(values[c], at, out=column)
        column -= column.mean()
        spread = math.sqrt(float(column @ column) / len(column))
        # a covariate constant among the fitted faces alone is the intercept again: a zero column
        # (already, when the spread is 0), which the rank check below turns into "cannot be told apart"
        if spread > 0:
            column /= spread
    del values
    design = _Design(dense=dense, emotion=emotion[order])
    del dense, emotion
    beta, hessian, why = _fit(y, design)
    if beta is None:
        return undefined(why, n, rates, "; ".join(notes))

    # Each face's prediction as it is and with its group flipped (everyone set to the group and to the
    # reference is then one or the other): two expits, no copy of the design per counterfactual.
    eta = design.times(beta)
    flipped = design.group * (-2 * beta[1])
    flipped += beta[1]
    flipped += eta
    flipped, p = _expit(flipped), _expit(eta)
    del eta
    is_reference = design.group == 0
    # p1 - p0 is p - flipped in the group and flipped - p in the reference
    d = p - flipped
    np.negative(d, out=d, where=is_reference)
    estimate = float(d.sum() / total)
    # Fitted-out faces have d = 0 and no score, but still count in the mean.
    d_all = np.zeros(total)
    d_all[order] = d
    del d
    # Influence per subject (rows of one person move together): the mean's own sampling plus the
    # coefficients' (sandwich) through the gradient g. The gradient of mean(p1 - p0) in beta: every
    # column but the group's is the same in both settings, weighted by p1 (1 - p1) - p0 (1 - p0);
    # the group's column is 1 and 0, weighted by p1 (1 - p1) alone.
    w_flipped = np.subtract(1.0, flipped)
    w_flipped *= flipped
    del flipped
    w_p = np.subtract(1.0, p)
    w_p *= p
    w1_total = float(np.where(is_reference, w_flipped, w_p).sum())
    np.negative(np.subtract(w_p, w_flipped, out=w_p), out=w_p, where=is_reference)
    del w_flipped
    gradient = design.transposed_times(w_p)
    del w_p, is_reference
    gradient[1] = w1_total
    gradient /= total
    direction = np.linalg.solve(hessian, gradient)
    # each face's score x_i (y_i - p_i) projected on the direction once: a subject's share is then a sum
    projected = np.zeros(total)
    projected[order] = design.times(direction) * np.subtract(y, p, out=p)
    fitted = len(y)
    del design, p, y

    def variance_by(codes: np.ndarray | None) -> float:
        # codes None: every face its own cluster (the sums per cluster are then the faces' own values)
        if codes is None:
            clusters, influence = total, (d_all - estimate) / total + projected
        else:
            clusters = int(codes.max()) + 1
            per_d = np.bincount(codes, weights=d_all, minlength=clusters)
            per_n = np.bincount(codes, minlength=clusters).astype(float)
            per_score = np.bincount(codes, weights=projected, minlength=clusters)
            influence = (per_d - per_n * estimate) / total + per_score
        # K / (K - 1): the usual small-sample factor of a clustered sandwich
        return clusters / (clusters - 1) * float((influence**2).sum()) if clusters > 1 else math.nan

    codes = (
        _clusters(_take(_take(rows["subject_id"].to_numpy(), keep), shown)) if "subject_id" in rows.columns else None
    )
    clusters = total if codes is None else int(codes.max()) + 1
    variance = variance_by(codes)
    independent = variance_by(None) if clusters < total else variance
    se = math.sqrt(variance) if variance > 0 else math.nan
    if not math.isfinite(se) or se == 0:
        return undefined("the adjusted difference has no estimable variance", n, rates, "; ".join(notes))

    words = _words(unadjusted, estimate, tolerance)
    notes.insert(
        0,
        f"unadjusted {unadjusted:+.3f} -> adjusted {estimate:+.3f} (point estimates): {words} "
        f"(adjusted for {', '.join(used) or 'no covariate'} and the true emotion; logistic fit on {fitted} "
        f"faces, marginal standardisation over {total})",
    )
    z_stat = estimate / se

    def interval_at(confidence: float, *, exact: bool = True) -> Interval:  # no exact-size step here
        half = float(norm.isf((1 - confidence) / 2)) * se
        return estimate - half, estimate + half, confidence

    def power_at(alpha: float) -> float:
        # a z-test of "no difference" when the true adjusted gap sits at the band's edge
        crit = float(norm.isf(alpha / 2))
        return float(norm.cdf(tolerance / se - crit) + norm.cdf(-tolerance / se - crit))

    per_group = (n[group] + n[reference]) / 2

    def needed_n_at(alpha: float, power: float) -> float:
        distance = abs(abs(estimate) - tolerance)
        return _settling_n(distance=distance, unit_variance=variance * per_group, alpha=alpha, power=power)

    return Measure(
        metric=METRIC,
        estimate=estimate,
        p_value=float(2 * norm.sf(abs(z_stat))),
        test_method="logistic regression, marginal standardisation, delta method (robust, by subject)",
        band=band,
        null=0.0,
        threshold=threshold,
        interval_at=interval_at,
        power_at=power_at,
        needed_n_at=needed_n_at,
        n=n,
        rates=rates,
        inference=(
            f"clustered by subject (design effect {variance / independent:.2f}; sandwich variance by subject)"
            if clusters < total and independent > 0
            else "independent images"
        ),
        note="; ".join(notes),
    )


# Rows per block of the design when X'WX is accumulated: a block's weighted copy is a few MB, not n x p.
CHUNK = 65_536
MAX_ITER = 100


class _Design:
    """The fit's design [1, group, z, emotion dummies] kept as its parts: the dense columns
    [1, group, z] as one contiguous n x (2 + k) array over rows sorted by emotion, and the start of
    each emotion's run. X b is then one matrix-vector product plus a constant per run; X'v and the
    dummies' entries of X'WX are products per run, whose first entry (the column of ones) is that
    run's sum. No n x p design is ever built."""

    def __init__(self, *, dense: np.ndarray, emotion: np.ndarray):
        # ``emotion``: a label per row, non-decreasing; each run of one label is one emotion, the first
        # run the baseline (no dummy)
        if len(emotion) and (emotion[1:] < emotion[:-1]).any():
            raise ValueError("the design's rows must be sorted by emotion")
        # column-major: X b and v'X are then BLAS products over contiguous columns (twice as fast
        # as over rows of 2 + k values), and a run of rows is still one strided BLAS operand
        self.dense = np.asfortranarray(dense, dtype=float)
        bounds = np.flatnonzero(emotion[1:] != emotion[:-1]) + 1
        edges = [0, *bounds.tolist(), len(emotion)]
        self.runs = list(zip(edges[:-1], edges[1:], strict=True))
        self.first = self.dense.shape[1]
        self.columns = self.first + len(self.runs) - 1

    @classmethod
    def of(cls, *, group: np.ndarray, z: np.ndarray, emotion: np.ndarray) -> _Design:
        """The design from its columns (rows already sorted by emotion)."""
        return cls(dense=np.column_stack([np.ones(len(group)), group, z]), emotion=emotion)

    @property
    def group(self) -> np.ndarray:
        return self.dense[:, 1]

    @property
    def z(self) -> np.ndarray:
        return self.dense[:, 2:]

    def times(self, b: np.ndarray) -> np.ndarray:
        out = self.dense @ b[: self.first]
        for (start, stop), shift in zip(self.runs[1:], b[self.first :], strict=True):
            out[start:stop] += shift
        return out

    def transposed_times(self, v: np.ndarray) -> np.ndarray:
        out = np.zeros(self.columns)
        for e, (start, stop) in enumerate(self.runs):
            part = v[start:stop] @ self.dense[start:stop]
            out[: self.first] += part
            if e:
                out[self.first + e - 1] = part[0]
        return out

    def weighted_cross(self, w: np.ndarray) -> np.ndarray:
        # Block by block within each emotion's run: U'(w U) for the dense columns; its first row
        # (the column of ones) summed over the run is that dummy's row, and its [0, 0] the diagonal.
        # (Column by column, (w x_j)'X, was a tenth faster on an idle machine but made the criterion
        # 1.4x slower when other processes held the cores: its long BLAS products are split across
        # threads, which then wait on one another.)
        first, out = self.first, np.zeros((self.columns, self.columns))
        buffer = np.empty((min(CHUNK, len(w)), first), order="F")
        for e, (start, stop) in enumerate(self.runs):
            dummy = np.zeros(first)
            for low in range(start, stop, CHUNK):
                high = min(low + CHUNK, stop)
                u = self.dense[low:high]
                cross = u.T @ np.multiply(u, w[low:high, None], out=buffer[: high - low])
                out[:first, :first] += cross
                dummy += cross[0]
            if e:
                j = first + e - 1
                out[j, :first] = out[:first, j] = dummy
                out[j, j] = dummy[0]
        return out


def _expit(eta: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-eta)), computed in ``eta``'s own memory (which it overwrites): scipy's expit
    is about three times slower on a million rows, and this agrees with it to a few ulps."""
    with np.errstate(over="ignore"):  # exp(-eta) = inf gives exactly 0
        np.exp(np.negative(eta, out=eta), out=eta)
    eta += 1.0
    return np.reciprocal(eta, out=eta)


def _fit(y: np.ndarray, design: _Design) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Maximum likelihood logistic fit: (coefficients, X'WX at them, "") or (None, None, reason).

    Newton-Raphson (McCullagh & Nelder 1989, Generalized Linear Models, 4.4: IRLS for the logistic
    MLE), written here rather than statsmodels' Logit or scikit-learn's newton-cholesky: those hold
    several n x p copies and compute the probabilities up to three times a step; this computes them
    once and keeps no n x p copy of the design. A step that lowers the likelihood is halved; the score
    and X'WX are computed only at an accepted point.
    """

    def at(beta: np.ndarray):
        p = _expit(design.times(beta))
        edge = min(float(p.min()), 1 - float(p.max()))
        residual = np.subtract(y, p, out=p)
        # y is 0 or 1, so |y - p| is the probability of the other outcome: the weight p (1 - p) and
        # the log-likelihood sum(log(1 - |y - p|)) come from it and the one expit, without a
        # logaddexp pass (its rounding for p within 1e-16 of the wrong outcome only matters for
        # steps far worse than the current point, which are halved anyway)
        miss = np.abs(residual)
        # statsmodels' rule (PerfectSeparationWarning): every fitted probability within 1e-8 of its outcome
        separated = float(miss.max()) <= 1e-8
        weight = np.subtract(1.0, miss)
        weight *= miss
        with np.errstate(divide="ignore"):  # log(0) = -inf: a step that is then halved
            loglik = float(np.log1p(np.negative(miss, out=miss), out=miss).sum())
        return loglik, residual, weight, separated, edge

    beta = np.zeros(design.columns)
    loglik, residual, weight, separated, edge = at(beta)
    hessian = design.weighted_cross(weight)
    # X'WX at beta = 0 is X'X / 4: its rank is the design's (no SVD of a million-row design)
    if np.linalg.matrix_rank(hessian, hermitian=True) < design.columns:
        return None, None, "the group cannot be told apart from the covariates and emotions (they determine it)"
    score = design.transposed_times(residual)
    del residual, weight  # freed before the next point's arrays are made
    converged = False
    for _ in range(MAX_ITER):
        try:
            step = np.linalg.solve(hessian, score)
        except np.linalg.LinAlgError as error:
            return None, None, f"the logistic fit failed ({' '.join(str(error).split())[:120]})"
        for _ in range(40):
            trial = at(beta + step)
            if trial[0] >= loglik - 1e-12 * (1 + abs(loglik)):
                break
            step /= 2
        else:
            break  # no step raises the likelihood: not converged
        beta = beta + step
        loglik, residual, weight, separated, edge = trial
        del trial
        if separated:
            return None, None, "perfect separation: the group or a covariate predicts correctness exactly"
        if not np.isfinite(beta).all():
            break
        score, hessian = design.transposed_times(residual), design.weighted_cross(weight)
        del residual, weight
        if np.abs(step).max() <= 1e-9 * max(1.0, np.abs(beta).max()):
            converged = True
            break
    if not converged or not np.isfinite(beta).all() or np.abs(beta).max() > 30 or edge < 1e-9:
        return None, None, "the logistic fit did not converge (near-perfect separation of correct and wrong faces)"
    return beta, hessian, ""
