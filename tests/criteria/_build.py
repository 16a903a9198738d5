"""Build Tables and policies for criteria tests directly from counts (no files, no models)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fer_fairness.config import CRITERIA, Thresholds, parse_thresholds
from fer_fairness.counts import CountTensor
from fer_fairness.criteria.evaluate import Table
from fer_fairness.labels import NON_ANSWERS


def policy(
    *, only: tuple[str, ...] = (), settings: dict[str, Any] | None = None, **criteria: dict[str, Any]
) -> Thresholds:
    """A policy with only the named criteria enabled (all when ``only`` is empty)."""
    tables = {name: dict(criteria.get(name, {})) for name in CRITERIA}
    for name in CRITERIA:
        if only and name not in only:
            tables[name]["enabled"] = False
    return parse_thresholds({"settings": settings or {}, "criteria": tables}, source="test policy")


def table(
    counts: dict[str, dict[str, dict[str, int]]],
    *,
    labels: tuple[str, ...],
    reference: str,
    attribute: str = "race",
    model: str = "m",
    dataset: str = "d",
) -> Table:
    """``counts[group][true][outcome]`` -> a Table comparing every group with ``reference``."""
    groups = tuple(counts)
    outcomes = labels + NON_ANSWERS
    tensor = np.zeros((len(groups), len(labels), len(outcomes)), dtype=np.int64)
    for g, group in enumerate(groups):
        for true, row in counts[group].items():
            for outcome, k in row.items():
                tensor[g, labels.index(true), outcomes.index(outcome)] = k
    return Table(
        model=model,
        dataset=dataset,
        tensor=CountTensor(attribute=attribute, groups=groups, labels=labels, outcomes=outcomes, counts=tensor),
        pairs=tuple((g, reference) for g in groups if g != reference),
    )
