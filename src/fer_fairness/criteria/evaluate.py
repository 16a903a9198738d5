"""From count tensors to verdict records: enumerate comparisons, correct each family once, decide.

Criteria are data: the table CRITERIA below says, for each, what it compares (pairs of groups,
single groups, or a whole attribute), over which details (emotions, confusion pairs), and which
measure it uses. One factory turns that table into records.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from fer_fairness import stats
from fer_fairness.config import CriterionConfig, Thresholds
from fer_fairness.counts import CountTensor
from fer_fairness.criteria import measures
from fer_fairness.criteria.measures import Measure
from fer_fairness.criteria.messages import explain
from fer_fairness.criteria.records import Record
from fer_fairness.criteria.verdict import Verdict, decide


@dataclass(frozen=True, kw_only=True)
class Subject:
    """What one test looks at; ``measure`` is None when it cannot be tested (a group too small)."""

    criterion: str
    model: str
    dataset: str
    attribute: str
    group: str
    reference: str | None
    detail: str | None
    n: dict[str, int]
    measure: Measure | None
    untested: str = ""
    note: str = ""  # what the reader should know beyond the numbers (e.g. groups left out)

    @property
    def test_id(self) -> str:
        parts = [self.model, self.dataset]
        if self.reference is not None:
            parts.append(f"{self.attribute}={self.group}~{self.reference}")
        elif self.group:
            parts.append(f"{self.attribute}={self.group}")
        else:
            parts.append(self.attribute)
        if self.detail:
            parts.append(self.detail)
        return "|".join(parts)


@dataclass(frozen=True, kw_only=True)
class Table:
    """One model x dataset x grouping: its counts and the comparisons the policy asks for."""

    model: str
    dataset: str
    tensor: CountTensor
    pairs: tuple[tuple[str, str], ...]  # (group, reference)


# -- what each criterion measures --------------------------------------------------------------


def _proportion(select: Callable[[np.ndarray, CountTensor, str | None], tuple[int, int]], *, compare: str):
    """A pair measure from a selector of (successes, trials) in one group's (T, O) counts."""

    def pair_measure(table: Table, group: str, reference: str, detail: str | None, cfg: CriterionConfig, metric: str):
        t = table.tensor
        x1, n1 = select(t.counts[t.groups.index(group)], t, detail)
        x0, n0 = select(t.counts[t.groups.index(reference)], t, detail)
        return measures.two_proportions(
            compare=compare,
            metric=metric,
            group=group,
            reference=reference,
            x1=x1,
            n1=n1,
            x0=x0,
            n0=n0,
            tolerance=cfg.threshold,
        )

    return pair_measure


def _correct(c: np.ndarray, t: CountTensor, _: str | None) -> tuple[int, int]:
    return int((c * t.correct_mask()).sum()), int(c.sum())


def _non_answer(c: np.ndarray, t: CountTensor, _: str | None) -> tuple[int, int]:
    return int(c[:, t.non_answer_mask()].sum()), int(c.sum())


def _recall(c: np.ndarray, t: CountTensor, emotion: str | None) -> tuple[int, int]:
    row = c[t.labels.index(emotion)]
    return int(row[t.outcomes.index(emotion)]), int(row.sum())


def _confusion(c: np.ndarray, t: CountTensor, pair: str | None) -> tuple[int, int]:
    true, wrong = pair.split("->")
    row = c[t.labels.index(true)]
    return int(row[t.outcomes.index(wrong)]), int(row.sum())


def _stratified(table: Table, group: str, reference: str, _detail, cfg: CriterionConfig, _metric: str) -> Measure:
    t = table.tensor
    return measures.stratified_difference(
        group=group,
        reference=reference,
        counts1=t.counts[t.groups.index(group)],
        counts0=t.counts[t.groups.index(reference)],
        correct=t.correct_mask(),
        tolerance=cfg.threshold,
    )


def _no_details(_t: CountTensor, _cfg: CriterionConfig) -> list[str | None]:
    return [None]


def _emotions(t: CountTensor, _cfg: CriterionConfig) -> list[str | None]:
    return list(t.labels)


def _confusion_pairs(t: CountTensor, cfg: CriterionConfig) -> list[str | None]:
    if cfg.pairs is None:
        return [f"{i}->{j}" for i in t.labels for j in t.labels if i != j]
    return [f"{i}->{j}" for i, j in cfg.pairs]  # checked against each dataset's labels on load


@dataclass(frozen=True)
class CriterionSpec:
    shape: str  # "pair": group vs reference; "group": each group alone; "attribute": all groups at once
    metric: str
    details: Callable[[CountTensor, CriterionConfig], list[str | None]] = _no_details
    pair_measure: Callable[..., Measure] | None = None


CRITERIA: dict[str, CriterionSpec] = {
    "accuracy_gap": CriterionSpec(
        "pair", "accuracy difference", pair_measure=_proportion(_correct, compare="difference")
    ),
    "accuracy_gap_stratified": CriterionSpec("pair", "stratified accuracy difference", pair_measure=_stratified),
    "recall_gap": CriterionSpec("pair", "recall difference", _emotions, _proportion(_recall, compare="difference")),
    "confusion_ratio": CriterionSpec(
        "pair", "confusion rate ratio", _confusion_pairs, _proportion(_confusion, compare="ratio")
    ),
    "non_answer_gap": CriterionSpec(
        "pair", "non-answer rate difference", pair_measure=_proportion(_non_answer, compare="difference")
    ),
    "accuracy_floor": CriterionSpec("group", "accuracy"),
    "association": CriterionSpec("attribute", "accuracy spread"),
    "association_stratified": CriterionSpec("attribute", "standardised accuracy spread"),
}


def _rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator per test, so a result never depends on which other tests ran before it."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")])


def _subjects(table: Table, name: str, spec: CriterionSpec, thresholds: Thresholds, seed: int) -> Iterator[Subject]:
    t, cfg = table.tensor, thresholds.criterion(name)
    sizes = t.group_sizes()
    minimum = thresholds.min_group_size
    base = dict(criterion=name, model=table.model, dataset=table.dataset, attribute=t.attribute)

    def too_small(groups) -> str:
        small = [f"{g} (n={sizes[g]})" for g in groups if sizes[g] < minimum]
        return f"{', '.join(small)} below min_group_size = {minimum}" if small else ""

    if spec.shape == "pair":
        for (group, reference), detail in itertools.product(table.pairs, spec.details(t, cfg)):
            n = {group: sizes[group], reference: sizes[reference]}
            untested = too_small((group, reference))
            measure = None if untested else spec.pair_measure(table, group, reference, detail, cfg, spec.metric)
            yield Subject(
                **base, group=group, reference=reference, detail=detail, n=n, measure=measure, untested=untested
            )
    elif spec.shape == "group":
        for group in t.groups:
            g = t.groups.index(group)
            untested = too_small((group,))
            measure = None
            if not untested:
                x, n_g = _correct(t.counts[g], t, None)
                measure = measures.accuracy_floor(group=group, x=x, n=n_g, minimum=cfg.threshold)
            yield Subject(
                **base,
                group=group,
                reference=None,
                detail=None,
                n={group: sizes[group]},
                measure=measure,
                untested=untested,
            )
    else:
        kept = tuple(g for g in t.groups if sizes[g] >= minimum)
        subject = Subject(**base, group="", reference=None, detail=None, n=sizes, measure=None)
        if len(kept) < 2:
            untested = f"fewer than two groups reach min_group_size = {minimum}"
            yield Subject(**{**subject.__dict__, "untested": untested})
            return
        index = [t.groups.index(g) for g in kept]
        measure = measures.accuracy_spread(
            groups=kept,
            counts=t.counts[index],
            correct=t.correct_mask(),
            stratified=name.endswith("stratified"),
            tolerance=cfg.threshold,
            resamples=thresholds.bootstrap_resamples,
            rng=_rng_for(seed, subject.test_id + name),
        )
        left_out = too_small(g for g in t.groups if g not in kept)
        note = f"left out of the comparison: {left_out}" if left_out else ""
        yield Subject(**{**subject.__dict__, "measure": measure, "note": note})


def _family_key(subject: Subject, thresholds: Thresholds) -> str:
    if thresholds.family == "run":
        return "run"
    return f"{subject.criterion}|{subject.model}|{subject.dataset}"


def evaluate(tables: list[Table], *, thresholds: Thresholds, seed: int) -> list[Record]:
    """Every enabled criterion over every table, corrected per family, decided."""
    subjects = [
        subject
        for name, spec in CRITERIA.items()
        if thresholds.criterion(name).enabled
        for table in tables
        for subject in _subjects(table, name, spec, thresholds, seed)
    ]
    families: dict[str, list[Subject]] = defaultdict(list)
    for subject in subjects:
        families[_family_key(subject, thresholds)].append(subject)
    records = []
    for family, members in families.items():
        records.extend(_decide_family(family, members, thresholds))
    return records


def _decide_family(family: str, members: list[Subject], thresholds: Thresholds) -> Iterator[Record]:
    tested = [s for s in members if s.measure is not None and not math.isnan(s.measure.p_value)]
    m = len(tested)
    adjusted = stats.adjust_p_values(p_values=[s.measure.p_value for s in tested], method=thresholds.correction)
    rejected = int((adjusted < thresholds.alpha).sum())
    confidence = stats.corrected_confidence(
        alpha=thresholds.alpha, family_size=m, method=thresholds.correction, n_rejected=rejected
    )
    # Power is judged at the Bonferroni level alpha / m: the level Holm guarantees every member.
    alpha_each = thresholds.alpha / max(m, 1)
    p_adjusted = {id(s): float(p) for s, p in zip(tested, adjusted, strict=True)}
    for subject in members:
        yield _record(subject, family, m, confidence, alpha_each, p_adjusted.get(id(subject)), thresholds)


def _record(
    subject: Subject,
    family: str,
    family_size: int,
    confidence: float,
    alpha_each: float,
    p_adjusted: float | None,
    thresholds: Thresholds,
) -> Record:
    cfg = thresholds.criterion(subject.criterion)
    measure = subject.measure
    common = dict(
        test_id=subject.test_id,
        criterion=subject.criterion,
        model=subject.model,
        dataset=subject.dataset,
        attribute=subject.attribute,
        group=subject.group,
        reference=subject.reference,
        detail=subject.detail,
        mode=thresholds.mode,
        inconclusive=thresholds.inconclusive,
        n=dict(measure.n) if measure is not None and measure.n else subject.n,
        family=family,
        family_size=family_size,
        owner=cfg.owner,
        rationale=cfg.rationale,
        note=subject.note,
    )
    if measure is None or p_adjusted is None:
        return Record(
            **common,
            metric=CRITERIA[subject.criterion].metric,
            verdict=Verdict.INCONCLUSIVE,
            estimate=measure.estimate if measure else None,
            ci_low=None,
            ci_high=None,
            confidence=None,
            p_value=None,
            p_adjusted=None,
            test_method=measure.test_method if measure else "",
            threshold=measure.threshold if measure else "",
            band_low=None,
            band_high=None,
            reason=f"not tested: {subject.untested or 'the statistic is undefined for these counts'}",
        )
    low, high = measure.interval_at(confidence)
    power = measure.power_at(alpha_each) if measure.power_at else None
    verdict = decide(
        mode=thresholds.mode,
        band=measure.band,
        estimate=measure.estimate,
        ci_low=low,
        ci_high=high,
        p_adjusted=p_adjusted,
        alpha=thresholds.alpha,
        power=power,
        target_power=thresholds.power,
    )
    needed = None
    if verdict is Verdict.INCONCLUSIVE and measure.needed_n_at is not None:
        needed = measure.needed_n_at(alpha_each, thresholds.power)
    record = Record(
        **common,
        metric=measure.metric,
        verdict=verdict,
        estimate=measure.estimate,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=measure.p_value,
        p_adjusted=p_adjusted,
        test_method=measure.test_method,
        threshold=measure.threshold,
        band_low=measure.band.low,
        band_high=measure.band.high,
        rates=dict(measure.rates),
        count_ratio=measure.count_ratio,
        power=power,
        required_n=needed,
    )
    return Record(**{**record.__dict__, "reason": explain(record, thresholds)})
