"""From count tensors to verdict records: enumerate comparisons, correct each family once, decide.

Criteria are data (criteria/catalogue.py): each says what it compares (pairs of groups, single
groups, or a whole attribute), over which details (emotions, confusion pairs), and which measure it
uses. This module turns them into records, the same way for built-in criteria and a user's own.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fer_fairness import stats
from fer_fairness.config import Thresholds
from fer_fairness.counts import CountTensor
from fer_fairness.criteria.catalogue import Criterion
from fer_fairness.criteria.measures import Measure
from fer_fairness.criteria.messages import explain
from fer_fairness.criteria.records import Planned, Record
from fer_fairness.criteria.verdict import Rule, Verdict, decide
from fer_fairness.errors import ConfigError


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

    def identity(self) -> dict[str, str | None]:
        """What names the test, as the planned test and its record both carry it."""
        return {
            "test_id": self.test_id,
            "criterion": self.criterion,
            "model": self.model,
            "dataset": self.dataset,
            "attribute": self.attribute,
            "group": self.group,
            "reference": self.reference,
            "detail": self.detail,
        }

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
    baseline: Any = None  # regression.TableBaseline when the run has a baseline (--fairness-baseline)
    scores: Any = None  # scores.ScoreSummary when the model gives per-label scores (score-based criteria)
    # One row per evaluated face (group, emotion, correct, subject_id, image covariates), for criteria
    # that fit rows rather than counts (adjusted_gap); None where a table is built from counts alone.
    rows: Any = None
    # (perturbation, group) -> stats.paired.PairedTable of (right on the clean image?, right on the
    # perturbed one?) over faces evaluated in both, for robustness_gap; None where no sweep ran.
    perturbed: Any = None
    # Per render of a counterfactual set (draw, subject_id, group, outcome) on the skin-tone table, for
    # counterfactual_flip (criteria/counterfactual.renders); None elsewhere, where it plans no test.
    counterfactual: Any = None


def _rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator per test, so a result never depends on which other tests ran before it."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")])


def _subjects(
    table: Table, criterion: Criterion, thresholds: Thresholds, seed: int, *, measured: bool = True
) -> Iterator[Subject]:
    """The tests of one criterion on one table; ``measured=False`` only names them (collection)."""
    name = criterion.name
    t, cfg = table.tensor, thresholds.criterion(name)
    evaluated = t.counts[:, :, t.evaluated_mask()].sum(axis=(1, 2))
    sizes = dict(zip(t.groups, evaluated.tolist(), strict=True))  # min_group_size counts evaluated faces
    minimum = thresholds.min_group_size
    base = dict(criterion=name, model=table.model, dataset=table.dataset, attribute=t.attribute)

    def too_small(groups) -> str:
        small = [f"{g} (n={sizes[g]})" for g in groups if sizes[g] < minimum]
        return f"{', '.join(small)} below min_group_size = {minimum}" if small else ""

    details = criterion.detail_list(t, cfg)
    if criterion.shape == "pair":
        for (group, reference), detail in itertools.product(table.pairs, details):
            n = {group: sizes[group], reference: sizes[reference]}
            untested = too_small((group, reference))
            measure = None if untested or not measured else _measured(criterion, table, group, reference, detail, cfg)
            yield Subject(
                **base, group=group, reference=reference, detail=detail, n=n, measure=measure, untested=untested
            )
    elif criterion.shape == "group":
        for group, detail in itertools.product(t.groups, details):
            untested = too_small((group,))
            measure = None if untested or not measured else _measured(criterion, table, group, detail, cfg)
            yield Subject(
                **base,
                group=group,
                reference=None,
                detail=detail,
                n={group: sizes[group]},
                measure=measure,
                untested=untested,
            )
    else:
        kept = tuple(g for g in t.groups if sizes[g] >= minimum)
        for detail in details:
            subject = Subject(**base, group="", reference=None, detail=detail, n=sizes, measure=None)
            if len(kept) < 2 or not measured:
                untested = f"fewer than two groups reach min_group_size = {minimum}"
                yield Subject(**{**subject.__dict__, "untested": untested})
                continue
            rng = _rng_for(seed, subject.test_id + name)
            measure = _measured(criterion, table, kept, cfg, rng)
            left_out = too_small(g for g in t.groups if g not in kept)
            note = f"left out of the comparison: {left_out}" if left_out else ""
            yield Subject(**{**subject.__dict__, "measure": measure, "note": note})


def _measured(criterion: Criterion, *args) -> Measure:
    """The criterion's measure; one from outside the package that fails or returns something else is
    a ConfigError naming it (the user's code, not a bug of the suite)."""
    if criterion.source == "fer-fairness":
        return criterion.measure(*args)
    try:
        measure = criterion.measure(*args)
    except Exception as error:
        text = " ".join(str(error).split())[:300]
        raise ConfigError(
            f"criterion '{criterion.name}' ({criterion.source}): its measure failed: {type(error).__name__}: {text}"
        ) from error
    if not isinstance(measure, Measure):
        raise ConfigError(
            f"criterion '{criterion.name}' ({criterion.source}): its measure returned {type(measure).__name__}, "
            "not a Measure (fer_fairness.rate_gap builds one from a selector)"
        )
    return measure


def _family_key(subject: Subject, thresholds: Thresholds) -> str:
    if thresholds.family == "run":
        return "run"
    return f"{subject.criterion}|{subject.model}|{subject.dataset}"


def _family_alpha(thresholds: Thresholds, criteria: list[Criterion], tables: list[Table]) -> dict[tuple, float]:
    """The error rate each family spends, per (model, dataset): with family = "gate" the criteria that
    can decide anything there share alpha (Bonferroni over those K), so the gate as a whole holds alpha.
    A score criterion cannot decide for a model without scores (all its tests are undefined), so it
    takes no share there."""
    pairs = {(t.model, t.dataset) for t in tables}
    if thresholds.family != "gate":
        return dict.fromkeys(pairs, thresholds.alpha)
    scored = {(t.model, t.dataset) for t in tables if getattr(t, "scores", None) is not None}
    # A counterfactual criterion has no test at all without counterfactual renders: no share there either.
    renders = {(t.model, t.dataset) for t in tables if getattr(t, "counterfactual", None) is not None}
    return {
        pair: thresholds.alpha
        / max(
            sum(
                (c.requires != "scores" or pair in scored) and (c.requires != "counterfactual" or pair in renders)
                for c in criteria
            ),
            1,
        )
        for pair in pairs
    }


def tested_criteria(thresholds: Thresholds, *, baseline: bool) -> list[Criterion]:
    """The enabled criteria this run can test: those needing a baseline only when it has one, those
    needing perturbations only when the policy lists some."""
    return [
        c
        for c in thresholds.enabled()
        if (c.requires != "baseline" or baseline)
        and (c.requires != "perturbations" or thresholds.criterion(c.name).perturbations)
    ]


def _applies(criterion: Criterion, table: Table) -> bool:
    """A criterion needing counterfactual renders is tested only on the tables that have them."""
    return criterion.requires != "counterfactual" or getattr(table, "counterfactual", None) is not None


def planned_tests(tables: list[Table], *, thresholds: Thresholds, with_baseline: bool) -> list[Planned]:
    """The tests evaluate() will decide on these tables, named without measuring anything."""
    return [
        Planned(**s.identity())
        for criterion in tested_criteria(thresholds, baseline=with_baseline)
        for table in tables
        if _applies(criterion, table)
        for s in _subjects(table, criterion, thresholds, 0, measured=False)
    ]


def evaluate(tables: list[Table], *, thresholds: Thresholds, seed: int) -> list[Record]:
    """Every enabled criterion over every table, corrected per family, decided."""
    criteria = tested_criteria(thresholds, baseline=any(t.baseline is not None for t in tables))
    subjects = [
        subject
        for criterion in criteria
        for table in tables
        if _applies(criterion, table)
        for subject in _subjects(table, criterion, thresholds, seed)
    ]
    families: dict[str, list[Subject]] = defaultdict(list)
    for subject in subjects:
        families[_family_key(subject, thresholds)].append(subject)
    records = []
    alpha = _family_alpha(thresholds, criteria, tables)
    for family, members in families.items():
        first = members[0]
        records.extend(_decide_family(family, members, thresholds, alpha.get((first.model, first.dataset), 0.0)))
    return records


def _testable(subject: Subject) -> bool:
    return subject.measure is not None and not subject.measure.undefined


def _decide_family(family: str, members: list[Subject], thresholds: Thresholds, alpha: float) -> Iterator[Record]:
    """One family: the level every interval is read at, then each member's verdict.

    Holm (default): every interval at the Bonferroni level 1 - a/m, simultaneous over the family,
    so each verdict can be read from its own interval. (Holm's step-down has no such interval per
    test; its adjusted p is reported for "a difference exists", as information.)
    BH: the FAILs are the comparisons Benjamini-Hochberg selects among the p-values of "the
    disparity lies beyond the band", shown at the false-coverage level 1 - R a/m for the R selected
    (Benjamini & Yekutieli 2005); likewise the PASSes among the p-values of "the disparity lies
    within the band"; everything else at the Bonferroni level, where it is neither.
    """
    tested = [s for s in members if _testable(s)]
    m = len(tested)
    raw = [s.measure.p_value for s in tested]
    adjusted = stats.adjust_p_values(p_values=raw, method=thresholds.correction)
    p_adjusted = {id(s): float(p) for s, p in zip(tested, adjusted, strict=True)}
    alpha_each = alpha / max(m, 1)  # the Bonferroni level: power is judged there too
    bonferroni = stats.corrected_confidence(alpha=alpha, family_size=m, method="holm", n_rejected=0)
    levels = {id(s): bonferroni for s in tested}
    if thresholds.correction == "bh" and m:
        for side in ("outside", "inside"):
            p_side = [_side_p_value(s.measure, side) for s in tested]
            selected = stats.adjust_p_values(p_values=p_side, method="bh") < alpha
            count = int(selected.sum())
            for s, chosen in zip(tested, selected, strict=True):
                if chosen and levels[id(s)] == bonferroni:
                    levels[id(s)] = stats.corrected_confidence(
                        alpha=alpha, family_size=m, method="bh", n_rejected=count
                    )
    for subject in members:
        yield _record(subject, family, m, levels.get(id(subject)), alpha_each, p_adjusted.get(id(subject)), thresholds)


def _side_p_value(measure: Measure, side: str) -> float:
    """The smallest a at which the interval at 1 - a lies wholly outside (or inside) the band.

    Intervals widen as the level rises, so "outside"/"inside" hold for every a above this one;
    found by bisection on log a. 1.0 when not even the 50% interval qualifies. The search reads the
    nominal intervals (the exact-size step would cost an enumeration per step); it only sets how
    many are selected, and each verdict is still read from the interval printed at its final level.
    """
    band = measure.band

    def holds(a: float) -> bool:
        low, high, _ = measure.interval_at(1.0 - a, exact=False)
        return band.excludes_interval(low, high) if side == "outside" else band.holds_interval(low, high)

    if not holds(0.5):
        return 1.0
    lo, hi = math.log(1e-15), math.log(0.5)  # holds at exp(hi); the answer lies in between
    if holds(math.exp(lo)):
        return 1e-15
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if holds(math.exp(mid)) else (mid, hi)
    return math.exp(hi)


def _record(
    subject: Subject,
    family: str,
    family_size: int,
    confidence: float | None,
    alpha_each: float,
    p_adjusted: float | None,
    thresholds: Thresholds,
) -> Record:
    cfg = thresholds.criterion(subject.criterion)
    measure = subject.measure
    common = dict(
        **subject.identity(),
        mode=thresholds.mode,
        inconclusive=thresholds.inconclusive,
        n=dict(measure.n) if measure is not None and measure.n else subject.n,
        family=family,
        family_size=family_size,
        owner=cfg.owner,
        rationale=cfg.rationale,
        note="; ".join(n for n in (subject.note, measure.note if measure else "") if n),
    )
    if measure is None or confidence is None:
        why = subject.untested or (measure.undefined if measure else "") or "the statistic is undefined"
        record = Record(
            **common,
            metric=measure.metric if measure else thresholds.definitions[subject.criterion].metric,
            verdict=Verdict.INCONCLUSIVE,
            rule=str(Rule.UNDEFINED),
            estimate=None,
            ci_low=None,
            ci_high=None,
            confidence=None,
            p_value=None,
            p_adjusted=None,
            test_method="",
            threshold=measure.threshold if measure else "",
            band_low=measure.band.low if measure else None,
            band_high=measure.band.high if measure else None,
            null=measure.null if measure else None,
            rates={k: v for k, v in measure.rates.items() if not math.isnan(v)} if measure else {},
            count_ratio=measure.count_ratio if measure else None,
            reason=f"not tested: {why}",
        )
        return Record(**{**record.__dict__, "reason": explain(record, thresholds)})
    low, high, level = measure.interval_at(confidence)
    power = measure.power_at(alpha_each) if measure.power_at else None
    verdict, rule = decide(
        mode=thresholds.mode,
        band=measure.band,
        estimate=measure.estimate,
        ci_low=low,
        ci_high=high,
        null=measure.null,
        power=power,
        target_power=thresholds.power,
    )
    needed = None
    if verdict is Verdict.INCONCLUSIVE and measure.needed_n_at is not None:
        needed = measure.needed_n_at(1.0 - confidence, thresholds.power)
    record = Record(
        **common,
        metric=measure.metric,
        verdict=verdict,
        rule=str(rule),
        estimate=measure.estimate,
        ci_low=low,
        ci_high=high,
        confidence=level,
        confidence_nominal=confidence,
        p_value=measure.p_value,
        p_adjusted=p_adjusted,
        test_method=measure.test_method,
        threshold=measure.threshold,
        band_low=measure.band.low,
        band_high=measure.band.high,
        null=measure.null,
        rates=dict(measure.rates),
        count_ratio=measure.count_ratio,
        power=power,
        required_n=needed,
        inference=measure.inference,
    )
    return Record(**{**record.__dict__, "reason": explain(record, thresholds)})
