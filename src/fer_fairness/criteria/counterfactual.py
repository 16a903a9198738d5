"""counterfactual_flip: how often the prediction changes when only skin tone changes.

On a counterfactual set (``synthetic?counterfactual=true``) each draw (identity, expression, view,
sensor noise) is rendered at every skin tone and the renders share a ``counterfactual_id``. For a
tone and its reference tone, a draw is one trial: a flip when the two renders get different answers.
Only draws answered at both tones count; a render that was not evaluated drops its draw, never a flip.

A person contributes many draws, so flips cluster by subject: the interval is Wilson's on effective
counts (the cluster-robust design effect of Rao & Scott 1992, widened for few clusters as in Cameron &
Miller 2015), the same inference as the accuracy floor. The band is the ``difference`` band [-t, t]
around "never flips" (0); a flip rate is never negative, so FAIL means the whole interval lies above t
and PASS means it lies below t.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from fer_fairness.datasets._table import COUNTERFACTUAL_ID
from fer_fairness.labels import NOT_EVALUATED

if TYPE_CHECKING:
    from fer_fairness.criteria.measures import Measure

KEY = COUNTERFACTUAL_ID  # ties the renders of one draw; a key, never a demographic attribute
ATTRIBUTE = "skin_tone"  # the one attribute a counterfactual set varies
METRIC = "counterfactual flip rate"


def renders(joined: pd.DataFrame, attributes: tuple[str, ...]) -> pd.DataFrame | None:
    """Per render: its draw, subject, tone and answer; None unless this grouping is skin tone alone on a
    dataset with counterfactual renders (only there does a group differ from another in tone only)."""
    if attributes != (ATTRIBUTE,) or KEY not in joined.columns:
        return None
    return pd.DataFrame(
        {
            "draw": joined[KEY].astype(str).to_numpy(),
            # Planning leaves subjects out (they name no test): each draw is then its own cluster.
            "subject_id": joined.get("subject_id", joined[KEY]).astype(str).to_numpy(),
            "group": joined[ATTRIBUTE].astype(str).to_numpy(),
            "outcome": joined["outcome"].astype(str).to_numpy(),
        }
    )


def flip_indicators(frame: pd.DataFrame, group: str, reference: str) -> tuple[pd.DataFrame, int]:
    """Draws answered at both tones, with subject and ``flip``; and how many draws a missing answer dropped."""
    a, b = frame[frame["group"] == group], frame[frame["group"] == reference]
    both = a.merge(b[["draw", "outcome"]], on="draw", suffixes=("", "_reference"))
    answered = (both["outcome"] != NOT_EVALUATED) & (both["outcome_reference"] != NOT_EVALUATED)
    kept = both[answered]
    return kept.assign(flip=(kept["outcome"] != kept["outcome_reference"]).to_numpy()), int((~answered).sum())


def flip_rate(table, group: str, reference: str, _detail, config) -> Measure:
    """The share of draws whose answer at ``group``'s tone differs from that at ``reference``'s."""
    from fer_fairness import stats
    from fer_fairness.criteria import measures
    from fer_fairness.criteria.verdict import Band

    tolerance = config.threshold
    band, threshold = Band(low=-tolerance, high=tolerance), f"flip rate <= {tolerance:g}"
    frame = getattr(table, "counterfactual", None)
    if frame is None:
        why = "the dataset has no counterfactual renders"
    elif frame.duplicated(["draw", "group"]).any():
        why = f"some {KEY} has two renders at one skin tone"
    else:
        indicators, dropped = flip_indicators(frame, group, reference)
        why = "" if len(indicators) else f"no face was answered at both {group} and {reference}"
    if why:
        return measures._undefined(
            METRIC, why, band=band, null=0.0, threshold=threshold, n={group: 0, reference: 0}, rates={}
        )
    per_subject = indicators.groupby("subject_id")["flip"].agg(["sum", "size"])
    x, n = int(per_subject["sum"].sum()), int(per_subject["size"].sum())
    share = measures.Share.of(x, n, (per_subject["sum"].to_numpy(), per_subject["size"].to_numpy()))
    estimate = share.rate

    def interval_at(confidence: float, *, exact: bool = True) -> measures.Interval:
        xe, ne = share.effective(confidence)
        ci = stats.wilson_interval(successes=xe, n=ne, confidence=confidence)
        return ci.low, ci.high, confidence

    def needed_n_at(alpha: float, power: float) -> float:
        p = (x + 1) / (n + 2)  # a flip rate of 0 still varies
        distance = abs(estimate - tolerance)
        return measures._settling_n(distance=distance, unit_variance=p * (1 - p), alpha=alpha, power=power) * (
            share.deff
        )

    note = (
        f"the answer differs between the {reference} and the {group} render of the same face "
        f"(identity, expression, view and sensor noise held equal) for {x} of {n} faces ({estimate:.1%})"
    )
    if dropped:
        note += f"; {dropped} face(s) left out, not evaluated at one of the two tones"
    return measures.Measure(
        metric=METRIC,
        estimate=estimate,
        # "Never flips" is refuted by one flip: the exact p of a rate of 0 is 1 without flips, else 0.
        p_value=0.0 if x else 1.0,
        test_method="exact: one flip refutes a rate of 0",
        band=band,
        null=0.0,
        threshold=threshold,
        interval_at=interval_at,
        needed_n_at=needed_n_at,
        n={group: n, reference: n},
        rates={group: estimate},
        inference=measures.inference_words([share]),
        note=note,
    )
