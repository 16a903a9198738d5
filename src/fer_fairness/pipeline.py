"""The pipeline behind RunState.prepare: load datasets, run models, count, evaluate, record facts."""

from __future__ import annotations

import itertools
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pandas as pd

from fer_fairness import __version__
from fer_fairness.config import Thresholds
from fer_fairness.counts import GROUP_JOIN, build_counts, join_outcomes
from fer_fairness.criteria.evaluate import Table, evaluate
from fer_fairness.criteria.records import Record
from fer_fairness.datasets import DATASETS
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError
from fer_fairness.models import MODELS
from fer_fairness.models._base import Model, PredictContext
from fer_fairness.session import RunState
from fer_fairness.specs import Spec

_VERSIONS = ("numpy", "scipy", "statsmodels", "pandas", "scikit-learn", "pytest")


def run(state: RunState) -> tuple[list[Record], dict[str, Any]]:
    """Every model on every dataset, every grouping, every criterion: the records and the run facts."""
    started = time.perf_counter()
    datasets = [_load_dataset(state, spec) for spec in state.dataset_specs]
    models = [_build_model(spec) for spec in state.model_specs]
    _unique("dataset", [d.name for d in datasets])
    _unique("model", [m.name for m in models])
    context = PredictContext(seed=state.seed, cache_dir=state.cache_dir, progress=state.progress, **state.limits)
    tables: list[Table] = []
    for model, dataset in itertools.product(models, datasets):
        state.say(f"fer-fairness: {model.name} on {dataset.name} ({len(dataset.samples)} images)")
        outcomes = model.predict(dataset, context=context)
        joined = join_outcomes(dataset.samples, outcomes, model=model.name, dataset=dataset.name)
        tables.extend(_tables(state, model.name, dataset, joined))
    records = evaluate(tables, thresholds=state.thresholds, seed=state.seed)
    facts = _facts(state, datasets, models)
    facts["counts"] = [_counts(table) for table in tables if GROUP_JOIN not in table.tensor.attribute]
    state.say(
        f"fer-fairness: {len(records)} fairness tests from {len(models)} model(s) x {len(datasets)} dataset(s) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return records, facts


def _load_dataset(state: RunState, spec: Spec) -> Dataset:
    loader = DATASETS.factory(spec.kind)
    return loader(spec, cache_dir=state.cache_dir, seed=state.seed, progress=state.progress)


def _build_model(spec: Spec) -> Model:
    return MODELS.factory(spec.kind)(spec)


def _tables(state: RunState, model: str, dataset: Dataset, joined: pd.DataFrame) -> list[Table]:
    groupings = _groupings(state.thresholds, dataset)
    tables = []
    for attributes in groupings:
        tensor = build_counts(joined, attributes=attributes, labels=dataset.emotions)
        reference = _reference(state.thresholds, dataset, tensor.attribute, tensor.groups, tensor.group_sizes())
        tables.append(
            Table(
                model=model,
                dataset=dataset.name,
                tensor=tensor,
                pairs=_pairs(state.thresholds, tensor.groups, reference),
            )
        )
    return tables


def _groupings(t: Thresholds, dataset: Dataset) -> list[tuple[str, ...]]:
    """Each attribute alone, then the declared intersections, all checked against the dataset."""
    attributes = t.attributes if t.attributes is not None else dataset.attributes
    for name in (
        *attributes,
        *itertools.chain.from_iterable(() if isinstance(t.intersections, str) else t.intersections),
    ):
        if name not in dataset.attributes:
            raise ConfigError(
                f"{t.source}: groups names attribute '{name}', which dataset '{dataset.name}' lacks "
                f"(it has: {', '.join(dataset.attributes) or 'no attributes'})"
            )
    if not attributes:
        raise ConfigError(f"dataset '{dataset.name}' has no demographic attribute columns to compare")
    if t.intersections == "all-pairs":
        intersections = list(itertools.combinations(attributes, 2))
    elif t.intersections == "none":
        intersections = []
    else:
        intersections = list(t.intersections)
    for true, wrong in t.criterion("confusion_ratio").pairs or ():
        if true not in dataset.emotions or wrong not in dataset.emotions:
            raise ConfigError(
                f"{t.source}: 'criteria.confusion_ratio.pairs' names {true}->{wrong}, but dataset "
                f"'{dataset.name}' has only {', '.join(dataset.emotions)}"
            )
    groupings = [(a,) for a in attributes] + intersections
    names = {GROUP_JOIN.join(g) for g in groupings}
    for key in t.reference:
        if key not in names:
            raise ConfigError(
                f"{t.source}: 'reference.{key}' names no grouping of dataset '{dataset.name}' "
                f"(groupings: {', '.join(sorted(names))})"
            )
    return groupings


def _reference(t: Thresholds, dataset: Dataset, attribute: str, groups: tuple[str, ...], sizes: dict[str, int]) -> str:
    configured = t.reference.get(attribute)
    if configured is None:
        return max(groups, key=lambda g: (sizes[g], [-ord(c) for c in g]))  # largest; ties alphabetical
    if configured not in groups:
        raise ConfigError(
            f"{t.source}: 'reference.{attribute}' = {configured!r} is not a group of "
            f"dataset '{dataset.name}' (groups: {', '.join(groups)})"
        )
    return configured


def _pairs(t: Thresholds, groups: tuple[str, ...], reference: str) -> tuple[tuple[str, str], ...]:
    pairs = [(g, reference) for g in groups if g != reference]
    if t.comparisons == "all-pairs":
        others = [g for g in groups if g != reference]
        pairs += list(itertools.combinations(others, 2))
    return tuple(pairs)


def _facts(state: RunState, datasets: list[Dataset], models: list[Model]) -> dict[str, Any]:
    versions = {}
    for package in _VERSIONS:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "fer_fairness_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": state.seed,
        "thresholds": {"source": state.thresholds.source, "sha256": state.thresholds.digest},
        "policy": {
            "mode": state.thresholds.mode,
            "alpha": state.thresholds.alpha,
            "correction": state.thresholds.correction,
            "family": state.thresholds.family,
            "power": state.thresholds.power,
            "min_group_size": state.thresholds.min_group_size,
            "inconclusive": state.thresholds.inconclusive,
        },
        "datasets": {
            d.name: {
                "spec": spec.text,
                "description": d.description,
                "images": len(d.samples),
                "fingerprint": d.fingerprint(),
                "attributes": list(d.attributes),
                "emotions": list(d.emotions),
                "composition": _composition(d),
                "exclusions": _exclusions(d),
                "notes": list(d.notes),
            }
            for d, spec in zip(datasets, state.dataset_specs, strict=True)
        },
        "models": {m.name: m.describe() for m in models},
        "prompts": {m.name: m.prompts() for m in models if hasattr(m, "prompts")},
        "usage": {m.name: m.usage() for m in models if hasattr(m, "usage")},
        "python": platform.python_version(),
        "platform": sys.platform,
        "versions": versions,
    }


def _exclusions(dataset: Dataset) -> list[dict[str, Any]]:
    """Excluded samples counted per reason and group (the user opted in; the report lists them)."""
    table = dataset.exclusions
    if table.empty:
        return []
    keys = ["reason", *[a for a in dataset.attributes if a in table.columns]]
    counts = table.fillna("unknown").groupby(keys).size()
    return [
        dict(zip(keys, (index if isinstance(index, tuple) else (index,)), strict=True), count=int(n))
        for index, n in counts.items()
    ]


def _counts(table: Table) -> dict[str, Any]:
    """One attribute's count tensor, for the report's confusion heatmaps and for re-analysis."""
    t = table.tensor
    return {
        "model": table.model,
        "dataset": table.dataset,
        "attribute": t.attribute,
        "groups": list(t.groups),
        "labels": list(t.labels),
        "outcomes": list(t.outcomes),
        "counts": t.counts.tolist(),
    }


def _composition(dataset: Dataset) -> dict[str, dict[str, dict[str, int]]]:
    """Images per attribute group x emotion (where mixes differ, accuracy is confounded with them)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for attribute in dataset.attributes:
        table = dataset.samples.groupby([attribute, "emotion"]).size()
        for (group, emotion), count in table.items():
            out.setdefault(attribute, {}).setdefault(group, {})[emotion] = int(count)
    return out


def _unique(what: str, names: list[str]) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ConfigError(f"two {what}s are named {', '.join(sorted(seen))}; give one a distinct ?name=")
