"""The criteria, each defined once: what it compares, its statistic, its band and its thresholds keys.

A criterion is data (``Criterion``); the built-in ones are listed in BUILTIN, and a user's own come
from a conftest hook (``pytest_fairness_criteria``) or an installed package's entry point
(group ``fer_fairness.criteria``). All are corrected, decided and reported alike.

Three shapes, each with its measure's signature:

* ``pair``: a group against a reference group, ``measure(table, group, reference, detail, config)``;
* ``group``: each group alone (a floor), ``measure(table, group, detail, config)``;
* ``attribute``: all groups of an attribute at once, ``measure(table, groups, config, rng)``.

``detail`` runs over what ``details(tensor, config)`` lists (emotions, confusion pairs), one test
each; ``config`` is the criterion's CriterionConfig (``config.threshold`` is its band's edge). A
measure returns a ``measures.Measure``. The simplest way to a new criterion is ``rate_gap``: a
selector of events and evaluated images over the count tensor, compared as a difference or ratio.

Light by design: the plugin reads the names and thresholds rules at start-up, so the numeric stack
is imported only inside the measures, when a fairness test first needs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fer_fairness.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from fer_fairness.config import CriterionConfig
    from fer_fairness.counts import CountTensor

Shape = Literal["pair", "group", "attribute"]
SHAPES: tuple[str, ...] = ("pair", "group", "attribute")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """The thresholds key that sets a criterion's band, its allowed range and default."""

    key: str  # "tolerance" (a band around no disparity) or "minimum" (a floor)
    kind: Literal["difference", "ratio", "floor"]  # what the band is on; "no disparity" is 0, 1, or none
    low: float
    high: float
    default: float
    low_open: bool = False
    high_open: bool = False


def difference(default: float) -> Threshold:
    """A tolerance on a difference of rates: the band is [-t, t]."""
    return Threshold(key="tolerance", kind="difference", low=0.0, high=1.0, low_open=True, default=default)


def ratio(default: float) -> Threshold:
    """A tolerance on a ratio of rates: the band is [1/t, t]."""
    return Threshold(key="tolerance", kind="ratio", low=1.0, high=100.0, low_open=True, default=default)


def floor(default: float) -> Threshold:
    """A minimum every group's rate must clear."""
    return Threshold(key="minimum", kind="floor", low=0.0, high=1.0, high_open=True, default=default)


@dataclass(frozen=True, kw_only=True)
class Criterion:
    """One fairness criterion. ``name`` is its thresholds section and its marker:
    ``[criteria.NAME]`` and ``@pytest.mark.fairness("NAME")``."""

    name: str
    shape: Shape
    metric: str  # the statistic in words, e.g. "accuracy difference"
    threshold: Threshold
    measure: Callable[..., Any]
    details: Callable[[CountTensor, CriterionConfig], list[str | None]] | None = None
    options: tuple[str, ...] = ()  # further thresholds keys the policy schema knows (e.g. "pairs")
    # What the criterion needs beyond the counts: "baseline" (tested only when the run has one,
    # --fairness-baseline), "scores" (per-label scores: a model without them is INCONCLUSIVE and spends
    # none of the gate's alpha), "covariates" (image covariates, measured only when such a criterion is on),
    # "perturbations" (tested only when its policy lists some: each one is a further model pass),
    # "counterfactual" (tested only on a dataset whose renders differ in skin tone alone).
    requires: str = ""
    summary: str = ""  # one line for docs and reports
    source: str = field(default="fer-fairness", compare=False)  # who defined it, for messages

    def detail_list(self, tensor: CountTensor, config: CriterionConfig) -> list[str | None]:
        return [None] if self.details is None else list(self.details(tensor, config))


def check(criteria: Iterable[Any], *, source: str, known: Iterable[Criterion] = ()) -> list[Criterion]:
    """Validate criteria given from outside the package; one ConfigError naming ``source`` per mistake."""
    taken = {c.name: c.source for c in known}
    checked = []
    for criterion in criteria:
        if not isinstance(criterion, Criterion):
            raise ConfigError(
                f"{source} gave {type(criterion).__name__} {criterion!r}; a criterion is a fer_fairness.Criterion "
                "(fer_fairness.rate_gap(...) builds the common kind)"
            )
        if not _NAME.fullmatch(criterion.name):
            raise ConfigError(
                f"{source}: criterion name {criterion.name!r} must be lower-case letters, digits and '_', "
                "starting with a letter (it is a thresholds section and a marker)"
            )
        if criterion.name in taken:
            raise ConfigError(f"{source} defines criterion '{criterion.name}', which {taken[criterion.name]} defines")
        if criterion.shape not in SHAPES:
            raise ConfigError(f"{source}: criterion '{criterion.name}' has shape {criterion.shape!r}; one of {SHAPES}")
        if not callable(criterion.measure) or (criterion.details is not None and not callable(criterion.details)):
            raise ConfigError(f"{source}: criterion '{criterion.name}' needs a callable measure (and details)")
        if not isinstance(criterion.threshold, Threshold):
            raise ConfigError(
                f"{source}: criterion '{criterion.name}' needs a Threshold (fer_fairness.criteria.catalogue."
                "difference, ratio or floor)"
            )
        criterion = Criterion(**{**criterion.__dict__, "source": source})
        taken[criterion.name] = source
        checked.append(criterion)
    return checked


# -- selectors: (counts of shape (..., T, O), tensor, detail) -> (events, evaluated images) ----------
# One selector serves a group's slice and every person's slice alike. Samples whose answer never
# arrived (NOT_EVALUATED) are in no denominator: they were not evaluated. Array methods only, so this
# module needs no numpy import.

Selector = Callable[["np.ndarray", "CountTensor", "str | None"], tuple["np.ndarray", "np.ndarray"]]


def correct(c, t, _detail):
    """Correct answers among evaluated faces."""
    return (c * t.correct_mask()).sum(axis=(-2, -1)), c[..., t.evaluated_mask()].sum(axis=(-2, -1))


def non_answer(c, t, _detail):
    """The model's own non-answers (refused, unparseable) among evaluated faces."""
    return c[..., t.model_non_answer_mask()].sum(axis=(-2, -1)), c[..., t.evaluated_mask()].sum(axis=(-2, -1))


def recall(c, t, emotion):
    """Faces of ``emotion`` read as it, among evaluated faces of it."""
    row = c[..., t.labels.index(emotion), :]
    return row[..., t.outcomes.index(emotion)], row[..., t.evaluated_mask()].sum(axis=-1)


def confusion(c, t, pair):
    """Faces of the true emotion read as the wrong one (``"anger->disgust"``), among evaluated faces of it."""
    true, wrong = pair.split("->")
    row = c[..., t.labels.index(true), :]
    return row[..., t.outcomes.index(wrong)], row[..., t.evaluated_mask()].sum(axis=-1)


def over_attribution(c, t, emotion):
    """Faces whose true emotion is another read as ``emotion``, among evaluated faces of the other emotions."""
    others = [i for i, label in enumerate(t.labels) if label != emotion]
    rows = c[..., others, :]
    return rows[..., t.outcomes.index(emotion)].sum(axis=-1), rows[..., t.evaluated_mask()].sum(axis=(-2, -1))


def share(t: CountTensor, group: str, select: Selector, detail: str | None):
    """One group's events and evaluated images, with its persons' counts where images repeat."""
    from fer_fairness.criteria import measures

    key = ("share", group, select, detail)  # a reference group's share recurs in every pair it is in
    if key in t.memo:
        return t.memo[key]
    g = t.groups.index(group)
    x, n = select(t.counts[g], t, detail)
    clusters = t.clusters
    if clusters is None:
        found = measures.Share.of(x, n)
    elif (sums := clusters.sums(g, select, t, detail)) is not None:
        # a count of images: its persons' sums from the group's cell Gram matrix
        if (int(round(float(x))), int(round(float(n)))) != (sums.x, sums.n):
            raise _not_a_count(select)
        found = measures.Share.of_sums(sums)
    else:
        per_subject = clusters.per_subject(g, select, t, detail)
        if any(int(round(v.sum())) != int(w) for v, w in zip(per_subject, (x, n), strict=True)):
            raise _not_a_count(select)
        found = measures.Share.of(x, n, per_subject)
    t.memo[key] = found
    return found


def _not_a_count(select: Selector) -> ConfigError:
    # The persons must add up to the group; a selector that is not a sum over cells would not.
    return ConfigError(
        f"selector {getattr(select, '__name__', select)!r} is not a sum over (true, outcome) cells: its "
        "persons' counts do not add up to the group's; a criterion's selector must count images"
    )


def strata(t: CountTensor, group: str):
    """Correct and evaluated counts per true emotion of one group."""
    c = t.counts[t.groups.index(group)]
    return (c * t.correct_mask()).sum(axis=1), c[:, t.evaluated_mask()].sum(axis=1)


# -- details ---------------------------------------------------------------------------------------


def emotions(t: CountTensor, _config: CriterionConfig) -> list[str | None]:
    return list(t.labels)


def confusion_pairs(t: CountTensor, config: CriterionConfig) -> list[str | None]:
    if config.pairs is None:
        return [f"{i}->{j}" for i in t.labels for j in t.labels if i != j]
    return [f"{i}->{j}" for i, j in config.pairs]  # checked against each dataset's labels on load


# -- measures --------------------------------------------------------------------------------------


def rate_gap(
    name: str,
    select: Selector,
    *,
    metric: str,
    compare: Literal["difference", "ratio"] = "difference",
    tolerance: float | None = None,
    details: Callable[[CountTensor, CriterionConfig], list[str | None]] | None = None,
    denominator: str | Callable[[str | None], str] = "evaluated faces",
    summary: str = "",
) -> Criterion:
    """A pair criterion comparing one rate between a group and its reference.

    ``select(counts, tensor, detail)`` maps counts of shape (..., true emotion, outcome) to (events,
    images), so the same selector serves groups and persons (clustered inference). The comparison is a
    Newcombe difference or a Katz ratio, with exact-size levels, design effects and power, as for the
    built-in gaps. ``denominator`` names the images in words for reasons ("anger faces (evaluated)").
    """
    if compare not in ("difference", "ratio"):
        raise ConfigError(f"criterion '{name}': compare must be 'difference' or 'ratio'; got {compare!r}")
    threshold = (difference if compare == "difference" else ratio)(
        tolerance if tolerance is not None else (0.05 if compare == "difference" else 1.5)
    )
    words = denominator if callable(denominator) else (lambda _detail: denominator)

    def measure(table, group, reference, detail, config):
        from fer_fairness.criteria import measures

        t = table.tensor
        return measures.two_proportions(
            compare=compare,
            metric=metric,
            group=group,
            reference=reference,
            a=share(t, group, select, detail),
            b=share(t, reference, select, detail),
            tolerance=config.threshold,
            what=words(detail),
        )

    return Criterion(
        name=name, shape="pair", metric=metric, threshold=threshold, measure=measure, details=details, summary=summary
    )


def _emotion_faces(detail: str | None) -> str:
    return f"{detail.split('->')[0]} faces (evaluated)"


def _other_faces(detail: str | None) -> str:
    return f"faces not showing {detail} (evaluated)"


def _stratified_gap(table, group, reference, _detail, config):
    from fer_fairness.criteria import measures

    t = table.tensor
    (x1, n1), (x0, n0) = strata(t, group), strata(t, reference)
    return measures.stratified_difference(
        group=group,
        reference=reference,
        labels=t.labels,
        x1=x1,
        n1=n1,
        x0=x0,
        n0=n0,
        a=share(t, group, correct, None),
        b=share(t, reference, correct, None),
        tolerance=config.threshold,
    )


def _adjusted_gap(table, group, reference, _detail, config):
    # Fits per-sample rows (table.rows), not the count tensor: covariates are continuous.
    from fer_fairness.criteria.adjusted import adjusted_gap

    return adjusted_gap(getattr(table, "rows", None), group=group, reference=reference, tolerance=config.threshold)


def _score_shift(table, group, reference, detail, config):
    from fer_fairness.scores import score_shift

    return score_shift(table, group, reference, detail, config)


def _calibration_gap(table, group, reference, detail, config):
    from fer_fairness.scores import calibration_gap

    return calibration_gap(table, group, reference, detail, config)


def _counterfactual_flip(table, group, reference, detail, config):
    from fer_fairness.criteria.counterfactual import flip_rate

    return flip_rate(table, group, reference, detail, config)


def _perturbations(_t: CountTensor, config: CriterionConfig) -> list[str | None]:
    return list(config.perturbations)


def _robustness(table, group, reference, detail, config):
    from fer_fairness.criteria.robustness import robustness_gap

    return robustness_gap(table, group, reference, detail, config)


# The gaps no_regression compares with the baseline (its details), in this order.
REGRESSION_GAPS = ("accuracy_gap", "non_answer_gap")


def _regression_gaps(_t: CountTensor, _config: CriterionConfig) -> list[str | None]:
    return list(REGRESSION_GAPS)


def _regression(table, group, reference, detail, config):
    from fer_fairness.criteria.regression import change_in_gap

    return change_in_gap(table, group, reference, detail, config)


def _floor(table, group, _detail, config):
    from fer_fairness.criteria import measures

    return measures.accuracy_floor(
        group=group, share=share(table.tensor, group, correct, None), minimum=config.threshold
    )


def _spread(stratified: bool):
    def measure(table, groups, config, rng):
        import numpy as np

        from fer_fairness.criteria import measures

        t = table.tensor
        counts = [strata(t, g) for g in groups]
        return measures.accuracy_spread(
            groups=tuple(groups),
            hits=np.array([h for h, _ in counts]),
            totals=np.array([n for _, n in counts]),
            shares=[share(t, g, correct, None) for g in groups],
            stratified=stratified,
            tolerance=config.threshold,
            rng=rng,
        )

    return measure


BUILTIN: tuple[Criterion, ...] = (
    rate_gap(
        "accuracy_gap",
        correct,
        metric="accuracy difference",
        tolerance=0.05,
        summary="accuracy of a group against its reference",
    ),
    Criterion(
        name="accuracy_gap_stratified",
        shape="pair",
        metric="stratified accuracy difference",
        threshold=difference(0.05),
        measure=_stratified_gap,
        summary="the accuracy gap within each true emotion, pooled (Mantel-Haenszel)",
    ),
    rate_gap(
        "recall_gap",
        recall,
        metric="recall difference",
        tolerance=0.10,
        details=emotions,
        denominator=_emotion_faces,
        summary="per emotion, how often a group's faces of it are read as it",
    ),
    Criterion(
        **{
            **rate_gap(
                "confusion_ratio",
                confusion,
                metric="confusion rate ratio",
                compare="ratio",
                tolerance=1.5,
                details=confusion_pairs,
                denominator=_emotion_faces,
            ).__dict__,
            "options": ("pairs",),
            "summary": 'how often one emotion is read as another ("anger->disgust"), as a ratio of rates',
        }
    ),
    rate_gap(
        "over_attribution",
        over_attribution,
        metric="over-attribution rate ratio",
        compare="ratio",
        tolerance=1.5,
        details=emotions,
        denominator=_other_faces,
        summary="per emotion, how often it is read into faces that do not show it (with recall_gap: equalised odds)",
    ),
    rate_gap(
        "non_answer_gap",
        non_answer,
        metric="non-answer rate difference",
        tolerance=0.02,
        summary="how often the model refuses or gives no usable answer",
    ),
    Criterion(
        name="accuracy_floor",
        shape="group",
        metric="accuracy",
        threshold=floor(0.5),
        measure=_floor,
        summary="every group's accuracy clears a minimum",
    ),
    Criterion(
        name="association",
        shape="attribute",
        metric="accuracy spread",
        threshold=difference(0.10),
        measure=_spread(stratified=False),
        summary="the largest accuracy gap between any two groups of an attribute",
    ),
    Criterion(
        name="association_stratified",
        shape="attribute",
        metric="standardised accuracy spread",
        threshold=difference(0.10),
        measure=_spread(stratified=True),
        summary="the same, with each group standardised to a common emotion mix",
    ),
    Criterion(
        name="no_regression",
        shape="pair",
        metric="change in gap since the baseline",
        threshold=difference(0.02),
        measure=_regression,
        details=_regression_gaps,
        requires="baseline",
        summary="each gap against the same gap of a baseline run (--fairness-baseline), paired on shared images",
    ),
    Criterion(
        name="score_shift",
        shape="pair",
        metric="mean score difference",
        threshold=difference(0.05),
        measure=_score_shift,
        details=emotions,
        requires="scores",
        summary="per emotion e, the mean score of e on faces not showing it (models with per-label scores)",
    ),
    Criterion(
        name="calibration_gap",
        shape="pair",
        metric="expected calibration error difference",
        threshold=difference(0.05),
        measure=_calibration_gap,
        requires="scores",
        summary="expected calibration error of the top-label confidence, with Brier scores (models with scores)",
    ),
    Criterion(
        name="adjusted_gap",
        shape="pair",
        metric="accuracy difference adjusted for image covariates and emotion",
        threshold=difference(0.05),
        measure=_adjusted_gap,
        requires="covariates",
        summary="the accuracy gap with lighting, contrast, sharpness, size and true emotion held equal "
        "(logistic regression, marginal standardisation)",
    ),
    Criterion(
        name="robustness_gap",
        shape="pair",
        metric="extra accuracy drop under a perturbation (group's drop minus reference's)",
        threshold=difference(0.05),
        measure=_robustness,
        details=_perturbations,
        options=("perturbations",),
        requires="perturbations",
        summary="per perturbation (brightness, contrast, blur, JPEG; opt-in, each costs a model pass), how much "
        "more accuracy a group loses than its reference, paired on the same images",
    ),
    Criterion(
        name="counterfactual_flip",
        shape="pair",
        metric="counterfactual flip rate",
        threshold=difference(0.05),
        measure=_counterfactual_flip,
        requires="counterfactual",
        summary="how often the answer changes when only skin tone changes: the same face rendered at two tones "
        "(synthetic?counterfactual=true)",
    ),
)
