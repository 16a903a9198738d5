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
import warnings

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
    pair = rows[rows["group"].isin((group, reference))]
    n = {g: int((pair["group"] == g).sum()) for g in (group, reference)}
    rates = {g: float(pair.loc[pair["group"] == g, "correct"].mean()) if n[g] else math.nan for g in n}
    unadjusted = rates[group] - rates[reference]
    if min(n.values()) < MIN_ROWS:
        return undefined(f"fewer than {MIN_ROWS} evaluated faces in a group", n, rates)

    notes = []
    present = [c for c in covariates if c in pair.columns and pair[c].notna().any()]
    if not present:
        return undefined("no image covariates are known for these faces (images absent)", n, rates)
    complete = pair.dropna(subset=present)
    if len(complete) < len(pair):
        notes.append(f"{len(pair) - len(complete)} face(s) without covariates left out of the fit")
    # An emotion only one group shows gives no within-emotion comparison: left out, and said so.
    # .unique() first: set() over a column iterates every string in Python (seconds at a million rows)
    both = set(complete.loc[complete["group"] == group, "emotion"].unique()) & set(
        complete.loc[complete["group"] == reference, "emotion"].unique()
    )
    shown = complete[complete["emotion"].isin(both)]
    alone = sorted(set(complete["emotion"].unique()) - both)
    if alone:
        notes.append(f"emotions only one group shows, left out: {', '.join(alone)}")
    if shown.empty or shown["group"].nunique() < 2:
        return undefined("the two groups share no emotion with covariates known", n, rates, "; ".join(notes))
    # A covariate that does not vary within the pair cannot confound it (e.g. one resolution for all).
    constant = [c for c in present if shown[c].std(ddof=0) == 0]
    used = [c for c in present if c not in constant]
    if constant:
        notes.append(f"constant here, not adjusted for: {', '.join(constant)}")
    # Where one emotion's faces are all right (or all wrong) in both groups, the fit's limit predicts
    # exactly that for every face of it whatever the group: those faces add 0 to the difference and
    # nothing to its variance, so they enter the mean but not the fit (no infinite coefficient).
    settled = shown.groupby("emotion", observed=True)["correct"].transform(lambda c: c.nunique() == 1).astype(bool)
    fitted = shown[~settled]
    total = len(shown)
    if fitted.empty or fitted["correct"].nunique() < 2:
        return undefined(
            "every face of the pair is right (or wrong) within its emotion: no variation to fit",
            n,
            rates,
            "; ".join(notes),
        )

    y = fitted["correct"].to_numpy(dtype=float)
    is_group = (fitted["group"] == group).to_numpy(dtype=float)
    z = fitted[used].to_numpy(dtype=float)
    z = (z - z.mean(axis=0)) / z.std(axis=0) if used else np.empty((len(fitted), 0))
    emotions = sorted(set(fitted["emotion"].unique()))
    dummies = (
        np.column_stack([(fitted["emotion"] == e).to_numpy(dtype=float) for e in emotions[1:]])
        if len(emotions) > 1
        else np.empty((len(fitted), 0))
    )
    x = np.column_stack([np.ones(len(fitted)), is_group, z, dummies])
    # The rank of the p x p cross-product, not of the n x p design (an SVD of a million rows per pair);
    # the fit below then skips statsmodels' own rank check (a QR of the design).
    if np.linalg.matrix_rank(x.T @ x, hermitian=True) < x.shape[1]:
        return undefined(
            "the group cannot be told apart from the covariates and emotions (they determine it)",
            n,
            rates,
            "; ".join(notes),
        )
    beta, why = _fit(y, x)
    if beta is None:
        return undefined(why, n, rates, "; ".join(notes))

    # Everyone set to the group (column 1 = 1) and to the reference (column 1 = 0), from the linear
    # predictor without the group's term: no copy of the design per counterfactual.
    eta = x @ beta
    p = expit(eta)
    rest = eta - x[:, 1] * beta[1]
    p1, p0 = expit(rest + beta[1]), expit(rest)
    d = p1 - p0
    estimate = float(d.sum() / total)
    # Influence per subject (rows of one person move together): the mean's own sampling plus the
    # coefficients' (sandwich) through the gradient g. Fitted-out faces have d = 0 and no score, but
    # still count in the mean. The gradient of mean(p1 - p0) in beta: every column but the group's
    # is the same in both settings; the group's column is 1 and 0.
    w1, w0 = p1 * (1 - p1), p0 * (1 - p0)
    gradient = x.T @ (w1 - w0)
    gradient[1] = w1.sum()
    gradient /= total
    hessian = x.T @ ((p * (1 - p))[:, None] * x)
    direction = np.linalg.solve(hessian, gradient)
    fit = (~settled).to_numpy()
    # each face's score x_i (y_i - p_i) projected on the direction once: a subject's share is then a sum
    d_all, projected = np.zeros(total), np.zeros(total)
    d_all[fit], projected[fit] = d, (x @ direction) * (y - p)

    def variance_by(codes: np.ndarray) -> float:
        clusters = int(codes.max()) + 1
        per_d = np.bincount(codes, weights=d_all, minlength=clusters)
        per_n = np.bincount(codes, minlength=clusters).astype(float)
        per_score = np.bincount(codes, weights=projected, minlength=clusters)
        influence = (per_d - per_n * estimate) / total + per_score
        # K / (K - 1): the usual small-sample factor of a clustered sandwich
        return clusters / (clusters - 1) * float((influence**2).sum()) if clusters > 1 else math.nan

    codes = pd.factorize(shown["subject_id"])[0] if "subject_id" in shown.columns else np.arange(total)
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
        f"(adjusted for {', '.join(used) or 'no covariate'} and the true emotion; logistic fit on {len(fitted)} "
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


def _fit(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Maximum likelihood logistic fit (statsmodels Logit, Newton's method: its analytic Hessian is a
    p x p product, where GLM's IRLS solves an n x p least squares each step, 3x slower at a million
    faces); (None, reason) where it diverges."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = sm.Logit(y, x, check_rank=False).fit(method="newton", maxiter=100, disp=0)
        except (PerfectSeparationError, PerfectSeparationWarning):
            return None, "perfect separation: the group or a covariate predicts correctness exactly"
        except (np.linalg.LinAlgError, ValueError) as error:
            return None, f"the logistic fit failed ({' '.join(str(error).split())[:120]})"
    beta = np.asarray(result.params, dtype=float)
    converged = bool(result.mle_retvals.get("converged", False))
    fitted = expit(x @ beta)
    if (
        not converged
        or not np.isfinite(beta).all()
        or np.abs(beta).max() > 30
        or min(fitted.min(), 1 - fitted.max()) < 1e-9
    ):
        return None, "the logistic fit did not converge (near-perfect separation of correct and wrong faces)"
    return beta, ""
