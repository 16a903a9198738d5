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
from scipy.special import expit
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


def _coded(column: pd.Series, keep: np.ndarray) -> tuple[np.ndarray, list]:
    """Integer codes (0..k-1) of ``column`` at rows ``keep`` and the value of each code; missing is a value too."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, values = column.cat.codes.to_numpy()[keep].astype(np.intp), list(column.cat.categories)
    else:
        codes, uniques = pd.factorize(column.to_numpy()[keep], sort=True)
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
    keep = np.flatnonzero(in_group | _selected(rows["group"], reference))
    is_group = in_group[keep]
    correct = rows["correct"].to_numpy(dtype=bool)[keep]
    n = {group: int(is_group.sum()), reference: int(len(keep) - is_group.sum())}
    rates = {
        group: float(correct[is_group].mean()) if n[group] else math.nan,
        reference: float(correct[~is_group].mean()) if n[reference] else math.nan,
    }
    unadjusted = rates[group] - rates[reference]
    if min(n.values()) < MIN_ROWS:
        return undefined(f"fewer than {MIN_ROWS} evaluated faces in a group", n, rates)

    notes = []
    values = {c: rows[c].to_numpy(dtype=float)[keep] for c in covariates if c in rows.columns}
    present = [c for c in covariates if c in values and not np.isnan(values[c]).all()]
    if not present:
        return undefined("no image covariates are known for these faces (images absent)", n, rates)
    complete = np.ones(len(keep), dtype=bool)
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
    shown = complete & (in_group_of & in_reference_of)[emotion]
    total = int(shown.sum())
    if total == 0:
        return undefined("the two groups share no emotion with covariates known", n, rates, "; ".join(notes))
    is_group, correct, emotion = is_group[shown], correct[shown], emotion[shown]
    values = {c: values[c][shown] for c in present}
    # A covariate that does not vary within the pair cannot confound it (e.g. one resolution for all).
    constant = [c for c in present if values[c].min() == values[c].max()]
    used = [c for c in present if c not in constant]
    if constant:
        notes.append(f"constant here, not adjusted for: {', '.join(constant)}")
    # Where one emotion's faces are all right (or all wrong) in both groups, the fit's limit predicts
    # exactly that for every face of it whatever the group: those faces add 0 to the difference and
    # nothing to its variance, so they enter the mean but not the fit (no infinite coefficient).
    faces, right = np.bincount(emotion, minlength=kinds), np.bincount(emotion, weights=correct, minlength=kinds)
    fit = ~((right == 0) | (right == faces))[emotion]
    y = correct[fit].astype(float)
    if len(y) == 0 or y.min() == y.max():
        return undefined(
            "every face of the pair is right (or wrong) within its emotion: no variation to fit",
            n,
            rates,
            "; ".join(notes),
        )

    z = np.empty((len(y), len(used)))
    for j, c in enumerate(used):
        column = values[c][fit]
        spread = column.std()
        # a covariate constant among the fitted faces alone is the intercept again: a zero column,
        # which the rank check below turns into "cannot be told apart"
        z[:, j] = (column - column.mean()) / spread if spread > 0 else 0.0
    _, emotion_fit = np.unique(emotion[fit], return_inverse=True)
    design = _Design(group=is_group[fit].astype(float), z=z, emotion=emotion_fit)
    beta, hessian, why = _fit(y, design)
    if beta is None:
        return undefined(why, n, rates, "; ".join(notes))

    # Everyone set to the group (column 1 = 1) and to the reference (column 1 = 0), from the linear
    # predictor without the group's term: no copy of the design per counterfactual.
    rest = design.times(beta) - design.group * beta[1]
    p = expit(rest + design.group * beta[1])
    p1, p0 = expit(rest + beta[1]), expit(rest)
    d = p1 - p0
    estimate = float(d.sum() / total)
    # Influence per subject (rows of one person move together): the mean's own sampling plus the
    # coefficients' (sandwich) through the gradient g. Fitted-out faces have d = 0 and no score, but
    # still count in the mean. The gradient of mean(p1 - p0) in beta: every column but the group's
    # is the same in both settings; the group's column is 1 and 0.
    w1 = p1 * (1 - p1)
    gradient = design.transposed_times(w1 - p0 * (1 - p0))
    gradient[1] = w1.sum()
    gradient /= total
    direction = np.linalg.solve(hessian, gradient)
    # each face's score x_i (y_i - p_i) projected on the direction once: a subject's share is then a sum
    d_all, projected = np.zeros(total), np.zeros(total)
    d_all[fit], projected[fit] = d, design.times(direction) * (y - p)

    def variance_by(codes: np.ndarray) -> float:
        clusters = int(codes.max()) + 1
        per_d = np.bincount(codes, weights=d_all, minlength=clusters)
        per_n = np.bincount(codes, minlength=clusters).astype(float)
        per_score = np.bincount(codes, weights=projected, minlength=clusters)
        influence = (per_d - per_n * estimate) / total + per_score
        # K / (K - 1): the usual small-sample factor of a clustered sandwich
        return clusters / (clusters - 1) * float((influence**2).sum()) if clusters > 1 else math.nan

    codes = (
        pd.factorize(rows["subject_id"].to_numpy()[keep[shown]])[0]
        if "subject_id" in rows.columns
        else np.arange(total)
    )
    clusters = int(codes.max()) + 1
    variance = variance_by(codes)
    independent = variance_by(np.arange(total)) if clusters < total else variance
    se = math.sqrt(variance) if variance > 0 else math.nan
    if not math.isfinite(se) or se == 0:
        return undefined("the adjusted difference has no estimable variance", n, rates, "; ".join(notes))

    words = _words(unadjusted, estimate, tolerance)
    notes.insert(
        0,
        f"unadjusted {unadjusted:+.3f} -> adjusted {estimate:+.3f} (point estimates): {words} "
        f"(adjusted for {', '.join(used) or 'no covariate'} and the true emotion; logistic fit on {len(y)} "
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


# Rows per block of the design when X'WX is accumulated: a block's copy is a few MB, not n x p.
CHUNK = 65_536
MAX_ITER = 100


class _Design:
    """The fit's design [1, group, z, emotion dummies] kept as its parts: X b, X'v and X'WX come
    from them, and no n x p design is ever built (only a block of the dense columns for X'WX)."""

    def __init__(self, *, group: np.ndarray, z: np.ndarray, emotion: np.ndarray):
        self.group, self.z, self.emotion = group, z, emotion
        self.emotions = int(emotion.max()) + 1  # the first is the baseline: no dummy
        self.columns = 2 + z.shape[1] + self.emotions - 1

    def times(self, b: np.ndarray) -> np.ndarray:
        k = self.z.shape[1]
        return b[0] + self.group * b[1] + self.z @ b[2 : 2 + k] + np.concatenate(([0.0], b[2 + k :]))[self.emotion]

    def transposed_times(self, v: np.ndarray) -> np.ndarray:
        by_emotion = np.bincount(self.emotion, weights=v, minlength=self.emotions)
        return np.concatenate(([v.sum(), v @ self.group], v @ self.z, by_emotion[1:]))

    def weighted_cross(self, w: np.ndarray) -> np.ndarray:
        # The dense columns (1, group, z) meet one another block by block; a dummy meets them (and
        # itself: a diagonal) only through sums within its emotion, which bincount gives directly.
        rows, first = len(w), 2 + self.z.shape[1]
        out = np.zeros((self.columns, self.columns))
        block = np.empty((min(CHUNK, rows), first))
        for start in range(0, rows, CHUNK):
            stop = min(start + CHUNK, rows)
            u = block[: stop - start]
            u[:, 0], u[:, 1], u[:, 2:] = 1.0, self.group[start:stop], self.z[start:stop]
            out[:first, :first] += u.T @ (w[start:stop, None] * u)
        # one weighted column at a time (a generator): no n x p of them at once
        weighted = (w * c for c in (np.ones(1), self.group, *self.z.T))
        for j, column in enumerate(weighted):
            out[j, first:] = out[first:, j] = np.bincount(self.emotion, weights=column, minlength=self.emotions)[1:]
        out[first:, first:] = np.diag(out[0, first:])
        return out


def _fit(y: np.ndarray, design: _Design) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Maximum likelihood logistic fit: (coefficients, X'WX at them, "") or (None, None, reason).

    Newton-Raphson (McCullagh & Nelder 1989, Generalized Linear Models, 4.4: IRLS for the logistic
    MLE), written here rather than statsmodels' Logit or scikit-learn's newton-cholesky: those hold
    several n x p copies and compute the probabilities up to three times a step; this computes them
    once and keeps only a block of the design. A step that lowers the likelihood is halved.
    """

    def at(beta: np.ndarray):
        eta = design.times(beta)
        p = expit(eta)
        residual = y - p
        loglik = float(y @ eta - np.logaddexp(0.0, eta).sum())
        # statsmodels' rule (PerfectSeparationWarning): every fitted probability within 1e-8 of its outcome
        separated = float(np.abs(residual).max()) <= 1e-8
        return loglik, design.transposed_times(residual), design.weighted_cross(p * (1 - p)), separated, p

    beta = np.zeros(design.columns)
    loglik, score, hessian, separated, p = at(beta)
    # X'WX at beta = 0 is X'X / 4: its rank is the design's (no SVD of a million-row design)
    if np.linalg.matrix_rank(hessian, hermitian=True) < design.columns:
        return None, None, "the group cannot be told apart from the covariates and emotions (they determine it)"
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
        loglik, score, hessian, separated, p = trial
        if separated:
            return None, None, "perfect separation: the group or a covariate predicts correctness exactly"
        if not np.isfinite(beta).all():
            break
        if np.abs(step).max() <= 1e-9 * max(1.0, np.abs(beta).max()):
            converged = True
            break
    if not converged or not np.isfinite(beta).all() or np.abs(beta).max() > 30 or min(p.min(), 1 - p.max()) < 1e-9:
        return None, None, "the logistic fit did not converge (near-perfect separation of correct and wrong faces)"
    return beta, hessian, ""
