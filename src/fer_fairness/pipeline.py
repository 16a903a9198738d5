"""The pipeline behind RunState.prepare: load datasets, run models, count, evaluate, record facts."""

from __future__ import annotations

import inspect
import itertools
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd

from fer_fairness import __version__, covariates, dataset_bias, perturb
from fer_fairness.baseline import OUTCOME_FIELDS
from fer_fairness.config import Thresholds
from fer_fairness.counts import GROUP_JOIN, Coded, build_counts, group_names, join_outcomes
from fer_fairness.criteria import counterfactual
from fer_fairness.criteria.evaluate import Table, evaluate, planned_tests
from fer_fairness.criteria.records import Planned, Record
from fer_fairness.datasets._table import Dataset, check_dataset
from fer_fairness.errors import ConfigError, DatasetError, FairnessError
from fer_fairness.evaluated import check_evaluated, count_not_evaluated
from fer_fairness.evaluation_cache import evaluate_cached
from fer_fairness.labels import NOT_EVALUATED
from fer_fairness.models._base import Model, PredictContext, check_model, check_outcomes
from fer_fairness.scores import summarise, with_scores
from fer_fairness.session import RunState
from fer_fairness.specs import Registry, Spec

_VERSIONS = ("numpy", "scipy", "statsmodels", "pandas", "scikit-learn", "pytest")


def load(state: RunState) -> tuple[list[Dataset], list[Model]]:
    """The datasets loaded and the models built (once per run); no model is asked anything yet."""
    if state.loaded is None:
        datasets = [_load_dataset(state, spec) for spec in state.dataset_specs]
        for dataset in datasets:
            dataset.remember_digests(state.cache_dir)  # a warm run hashes no unchanged image again
        models = [_build_model(state, spec) for spec in state.model_specs]
        _unique("dataset", [d.name for d in datasets])
        _unique("model", [m.name for m in models])
        state.loaded = (datasets, models)
    return state.loaded


def plan(state: RunState) -> list[Planned]:
    """Every fairness test of the run, named from the datasets and the policy alone (no prediction).

    The tests' ids depend on the groups, emotions and comparisons, which come from the samples; so
    each table is counted here as if every answer were right, only to enumerate what will be tested.
    """
    datasets, models = load(state)
    tables: list[Table] = []
    for model, dataset in itertools.product(models, datasets):
        # Subjects only matter to inference, not to which tests exist: leaving them out spares the
        # per-person counting (np.unique over every row) that names no test.
        joined = dataset.samples.drop(columns="subject_id").assign(outcome=dataset.samples["emotion"])
        tables.extend(_tables(state, model.name, dataset, joined, planning=True))
    return planned_tests(tables, thresholds=state.thresholds, with_baseline=state.baseline is not None)


def run(state: RunState, pairs: set[tuple[str, str]] | None = None) -> tuple[list[Record], dict[str, Any]]:
    """The records and run facts of the (model, dataset) ``pairs`` (None: all): predict, count, evaluate.

    Only the models of selected tests are asked (``-k`` naming one model runs that model alone); each
    family is still corrected as a whole, since a family never spans two models or datasets (with
    ``family = "run"`` the caller asks for every pair).
    """
    started = time.perf_counter()
    datasets, models = load(state)
    for dataset in datasets:  # the facts' fingerprints, hashed before any table exists (a lower peak)
        if pairs is None or any(name == dataset.name for _, name in pairs):
            dataset.fingerprint()
    context = PredictContext(
        seed=state.seed, cache_dir=state.cache_dir, progress=state.progress, engine=state.engine, **state.limits
    )
    tables: list[Table] = []
    kept: list[pd.DataFrame] = []
    measured: dict[str, pd.DataFrame] = {}  # image covariates per dataset, read once per run (cached by digest)
    for model, dataset in itertools.product(models, datasets):
        if pairs is not None and (model.name, dataset.name) not in pairs:
            continue
        state.say(f"fer-fairness: {model.name} on {dataset.name} ({len(dataset.samples)} images)")
        predicted = check_outcomes(model.predict(dataset, context=context), model=model.name, dataset=dataset.name)
        outcomes = _without_excluded(predicted, dataset)
        joined = join_outcomes(dataset.samples, outcomes, model=model.name, dataset=dataset.name)
        joined = with_scores(joined, outcomes)  # score_<emotion> columns, for the score-based criteria
        check_evaluated(outcomes, model=model, dataset=dataset.name, limit=state.thresholds.max_not_evaluated)
        joined = joined.assign(image=dataset.image_digests.array)  # the samples' order (a categorical)
        kept.append(joined[["sample_id", "image", "outcome"]].assign(model=model.name, dataset=dataset.name))
        values = None
        if any(c.requires == "covariates" for c in state.thresholds.enabled()):  # read images only when used
            if dataset.name not in measured:
                measured[dataset.name] = covariates.for_dataset(dataset, state.cache_dir)
            values = measured[dataset.name]  # row i is sample i, as in ``joined``
        perturbed = _perturbed_outcomes(state, model, dataset, context)
        tables.extend(_tables(state, model.name, dataset, joined, measured=values, perturbed=perturbed))
    # Every sample's outcome, with its image's digest: written beside fairness.json, so this run can
    # be the paired baseline of a later one.
    state.outcomes = pd.concat(kept, ignore_index=True)[list(OUTCOME_FIELDS)] if kept else None
    # A warm re-run on unchanged tables and policy reads the records instead of recomputing them.
    records = evaluate_cached(
        tables, thresholds=state.thresholds, seed=state.seed, cache_dir=state.cache_dir, compute=evaluate
    )
    if pairs is not None:  # the facts describe what this run asked, not what -k left out
        models = [m for m in models if any(m.name == name for name, _ in pairs)]
        datasets = [d for d in datasets if any(d.name == name for _, name in pairs)]
    facts = _facts(state, datasets, models)
    facts["counts"] = [_counts(table) for table in tables]
    facts["not_evaluated"] = count_not_evaluated(tables)
    facts["covariates"] = {
        d.name: covariates.distributions(d.samples, measured[d.name], d.attributes)
        for d in datasets
        if d.name in measured
    }
    asked = len(models) * len(datasets) if pairs is None else len(pairs)
    state.say(
        f"fer-fairness: {len(records)} fairness tests from {asked} model x dataset pair(s) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return records, facts


def _perturbed_outcomes(
    state: RunState, model: Model, dataset: Dataset, context: PredictContext
) -> dict[str, pd.DataFrame] | str | None:
    """Per perturbation of robustness_gap's sweep, the model's answers joined to the samples; None
    without a sweep; the reason, where this model cannot be asked about perturbed images."""
    sweep = perturb.sweep(state.thresholds)
    if not sweep:
        return None
    if model.describe().get("kind") == "predictions":
        return "a model answering from a predictions file cannot see perturbed images"
    if getattr(model, "learns_from_dataset", False):
        return (
            f"{model.name} is fitted on each dataset it is given (cross-validated): on perturbed images it would "
            "be a new model trained on them, not this one meeting worse photos"
        )
    joined = {}
    for perturbation in sweep:
        shifted = perturb.perturbed_dataset(dataset, perturbation, state.cache_dir)
        state.say(f"fer-fairness: {model.name} on {shifted.name}")
        answers = check_outcomes(model.predict(shifted, context=context), model=model.name, dataset=shifted.name)
        answers = _without_excluded(answers, dataset)
        check_evaluated(answers, model=model, dataset=shifted.name, limit=state.thresholds.max_not_evaluated)
        joined[perturbation.name] = join_outcomes(dataset.samples, answers, model=model.name, dataset=shifted.name)
    return joined


def _without_excluded(outcomes: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """A predictions file answers every sample, excluded ones too: those answers are set aside, not errors."""
    table = dataset.exclusions
    if table.empty or "sample_id" not in table.columns:
        return outcomes
    excluded = set(table["sample_id"].dropna().astype(str))
    return outcomes[~outcomes["sample_id"].astype(str).isin(excluded)].reset_index(drop=True)


def _load_dataset(state: RunState, spec: Spec) -> Dataset:
    context = {"cache_dir": state.cache_dir, "seed": state.seed, "progress": state.progress}
    if spec.kind in state.datasets.entries:
        return state.datasets.build(spec, **context)
    return check_dataset(_from_outside(state.datasets, spec, context, what="dataset"), spec)


def _build_model(state: RunState, spec: Spec) -> Model:
    if spec.kind in state.models.entries:
        return state.models.build(spec)
    return check_model(_from_outside(state.models, spec, {}, what="model"), spec)


def _from_outside(registry: Registry, spec: Spec, context: dict[str, Any], *, what: str) -> Any:
    """A dataset or model added by a conftest hook or an installed package: a ready object, or a
    factory called with the spec (and whichever of ``context`` its signature asks for). The user's
    code failing is one line naming the kind, not a traceback."""
    made = registry.factory(spec.kind)
    if not callable(made) or isinstance(made, Dataset) or (hasattr(made, "predict") and not isinstance(made, type)):
        if spec.target or spec.options:
            raise ConfigError(f"{what} '{spec.text}': '{spec.kind}' is a ready {what}; it takes no target or options")
        return made
    wanted = _accepted(made, context)
    try:
        return made(spec, **wanted)
    except FairnessError:
        raise
    except Exception as error:
        text = " ".join(str(error).split())[:300]
        raise ConfigError(f"{what} '{spec.text}': its factory failed: {type(error).__name__}: {text}") from error


def _accepted(factory: Any, context: dict[str, Any]) -> dict[str, Any]:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(context)
    names = {p.name for p in parameters}
    return {k: v for k, v in context.items() if k in names}


def _tables(
    state: RunState,
    model: str,
    dataset: Dataset,
    joined: pd.DataFrame,
    *,
    planning: bool = False,
    measured: pd.DataFrame | None = None,
    perturbed: dict[str, pd.DataFrame] | str | None = None,
) -> list[Table]:
    t = state.thresholds
    references: dict[str, str] = {}  # each attribute's reference group, over the whole dataset
    tables = []
    groupings = _groupings(t, dataset)
    # Every column a grouping reads, factorised once for all groupings (counting is then integer work)
    coded = Coded.of(joined, [*itertools.chain.from_iterable(groupings), "emotion", "outcome"])
    faces = None if planning or measured is None else _faces(coded, measured)
    for attributes in groupings:
        tensor = build_counts(joined, attributes=attributes, labels=dataset.emotions, coded=coded)
        if len(attributes) > 1 and t.intersection_comparisons == "one-reference":
            reference = _reference(t, dataset, tensor.attribute, tensor.groups, tensor.group_sizes())
            pairs = _one_reference_pairs(t, tensor.groups, reference)
        else:
            for a in attributes:
                if a not in references:
                    codes, values = coded.columns[a]
                    sizes = dict(zip(values, np.bincount(codes, minlength=len(values)).tolist(), strict=True))
                    references[a] = _reference(t, dataset, a, tuple(sorted(sizes)), sizes)
            cells = _cells(dataset, coded.groups(attributes)[1], attributes)
            pairs = _like_with_like_pairs(
                tensor.groups, cells, [references[a] for a in attributes], all_pairs=t.comparisons == "all-pairs"
            )
        baseline = None if planning else _baseline_for(state, model, dataset, joined, attributes, tensor)
        rows = None if faces is None else _rows(coded, attributes, *faces)
        scores = (
            None if planning else summarise(joined, attributes=attributes, groups=tensor.groups, labels=tensor.labels)
        )
        robust = perturbed if isinstance(perturbed, str) else None  # no answers on perturbed images: why
        if isinstance(perturbed, dict):  # clean (before) vs perturbed (now), paired per face as a baseline is
            robust = {
                (name, group): pt
                for name, now in perturbed.items()
                for (gap, group), pt in _paired_tables(now, joined, attributes).items()
                if gap == "accuracy_gap"
            }
        tables.append(
            Table(
                model=model,
                dataset=dataset.name,
                tensor=tensor,
                pairs=pairs,
                baseline=baseline,
                scores=scores,
                rows=rows,
                perturbed=robust,
                counterfactual=counterfactual.renders(joined, attributes),
            )
        )
    return tables


def _faces(coded: Coded, measured: pd.DataFrame) -> tuple[np.ndarray, dict[str, Any]]:
    """The evaluated faces' positions in the table, with the columns every grouping's rows share
    (emotion, correctness, person, covariates): built once per table, not once per grouping."""
    outcome, outcomes = coded.columns["outcome"]
    emotion, emotions = coded.columns["emotion"]
    not_evaluated = outcomes.index(NOT_EVALUATED) if NOT_EVALUATED in outcomes else -1
    evaluated = np.flatnonzero(outcome != not_evaluated)
    read_as = np.array([emotions.index(o) if o in emotions else -1 for o in outcomes], dtype=np.int64)
    shared: dict[str, Any] = {
        "emotion": _categorical(emotion[evaluated], emotions),
        "correct": read_as[outcome[evaluated]] == emotion[evaluated] if len(outcomes) else np.zeros(0, dtype=bool),
        # a person code, as the counts use it (an image without a subject is a person of its own)
        "subject_id": np.arange(len(evaluated)) if coded.subjects is None else coded.subjects[evaluated],
    }
    every = len(evaluated) == len(outcome)  # then the covariates are the measured columns themselves, not copies
    for column in measured.columns:
        values = measured[column].to_numpy(dtype=float)
        shared[column] = values if every else values[evaluated]
    return evaluated, shared


def _rows(coded: Coded, attributes: tuple[str, ...], evaluated: np.ndarray, shared: dict[str, Any]) -> pd.DataFrame:
    """One row per evaluated face: its group in this grouping, emotion, correctness, subject, covariates.

    Coded, not strings (categoricals and integer person codes are a few bytes a row where Python
    strings are about a hundred), and every grouping's frame holds the same arrays for all columns
    but the group (copy=False), so three groupings of a million faces cost one covariate block.
    """
    g, groups = coded.group_index(attributes)
    return pd.DataFrame({"group": _categorical(g[evaluated], groups), **shared}, copy=False)


def _categorical(codes: np.ndarray, values: tuple[str, ...]) -> pd.Categorical:
    """The values at ``codes`` as a categorical of the values present, in sorted order (as
    pd.Categorical of the strings would make it, without building the strings)."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(values))) if len(codes) else np.zeros(0, dtype=np.int64)
    order = sorted(present.tolist(), key=lambda i: values[i])
    position = np.full(len(values), -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    return pd.Categorical.from_codes(position[codes], categories=[values[i] for i in order])


def _baseline_for(
    state: RunState, model: str, dataset: Dataset, joined: pd.DataFrame, attributes: tuple[str, ...], tensor
) -> Any:
    """The baseline's side of one table (regression.TableBaseline), or None when the run has no baseline."""
    baseline = state.baseline
    if baseline is None:
        return None
    from fer_fairness.criteria.catalogue import REGRESSION_GAPS
    from fer_fairness.criteria.regression import TableBaseline

    name = baseline.model_for(model)
    if name is None:
        raise ConfigError(
            f"baseline {baseline.source} holds models {', '.join(baseline.models)}; none is named '{model}', "
            "so which to compare it with is unclear (name the candidate like its baseline with ?name=)"
        )
    entry = baseline.counts.get((name, dataset.name, tensor.attribute))
    old_groups = set(entry["groups"]) if entry is not None else set()
    gaps = {}
    for criterion in REGRESSION_GAPS:
        for group in tensor.groups:
            for reference in tensor.groups:
                record = baseline.gap(name, dataset.name, criterion, tensor.attribute, group, reference)
                if record is not None:
                    gaps[(criterion, group, reference)] = record
    common = dict(source=baseline.source, model=name, counts=entry, gaps=gaps)
    common["new_groups"] = tuple(g for g in tensor.groups if g not in old_groups)
    previous = baseline.outcomes(name, dataset.name)
    if previous is None:
        return TableBaseline(**common, note="not paired: the baseline kept no per-sample outcomes for this dataset")
    now = set(zip(joined["sample_id"], joined["image"], strict=True))
    before = set(zip(previous["sample_id"], previous["image"], strict=True))
    if now != before:
        differ = len(now ^ before)
        return TableBaseline(
            **common, note=f"not paired: {differ} image(s) differ from the baseline's (by sample id and image bytes)"
        )
    return TableBaseline(**common, paired=_paired_tables(joined, previous, attributes))


def _paired_tables(joined: pd.DataFrame, previous: pd.DataFrame, attributes: tuple[str, ...]) -> dict:
    """Per (gap, group): the 2x2 table of (event before, event now) over images evaluated in both runs.

    Both runs are judged against this run's labels (the same images; a corrected label applies to both).
    """
    from fer_fairness.labels import MODEL_NON_ANSWERS
    from fer_fairness.stats.paired import PairedTable

    both = joined.merge(previous[["sample_id", "outcome"]], on="sample_id", suffixes=("", "_before"))
    both = both[(both["outcome"] != NOT_EVALUATED) & (both["outcome_before"] != NOT_EVALUATED)]
    group = group_names(both, attributes)
    events = {
        "accuracy_gap": (both["outcome_before"] == both["emotion"], both["outcome"] == both["emotion"]),
        "non_answer_gap": (both["outcome_before"].isin(MODEL_NON_ANSWERS), both["outcome"].isin(MODEL_NON_ANSWERS)),
    }
    tables = {}
    for gap, (before, now) in events.items():
        for name in set(group):
            here = (group == name).to_numpy()
            b, n = before.to_numpy()[here], now.to_numpy()[here]
            tables[(gap, name)] = PairedTable(
                both=int((b & n).sum()),
                baseline_only=int((b & ~n).sum()),
                candidate_only=int((~b & n).sum()),
                neither=int((~b & ~n).sum()),
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
    crossed = {GROUP_JOIN.join(g): g for g in intersections}
    # An attribute seen only inside an intersection still has a reference (like-with-like uses it).
    names = {GROUP_JOIN.join(g) for g in groupings} | set(itertools.chain.from_iterable(intersections))
    for key in t.reference:
        if key in crossed and t.intersection_comparisons == "like-with-like":
            raise ConfigError(
                f"{t.source}: 'reference.{key}' names an intersection, which applies only with "
                f"'groups.intersection_comparisons' = \"one-reference\"; like-with-like compares each cell with the "
                f"cell that differs in one attribute, set to that attribute's reference "
                f"(set {' and '.join(repr('reference.' + a) for a in crossed[key])} instead)"
            )
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


def _one_reference_pairs(t: Thresholds, groups: tuple[str, ...], reference: str) -> tuple[tuple[str, str], ...]:
    """Every cell vs one reference cell (and, with all-pairs, every other pair): the opt-in old way."""
    pairs = [(g, reference) for g in groups if g != reference]
    if t.comparisons == "all-pairs":
        others = [g for g in groups if g != reference]
        pairs += list(itertools.combinations(others, 2))
    return tuple(pairs)


def _cells(
    dataset: Dataset, combinations: tuple[tuple[str, ...], ...], attributes: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """Each group name of a grouping and its value per attribute (a name alone is ambiguous: "50+")."""
    cells: dict[str, tuple[str, ...]] = {}
    for values in combinations:
        name = GROUP_JOIN.join(values)
        if cells.setdefault(name, values) != values:
            raise DatasetError(
                f"dataset '{dataset.name}': values {cells[name]} and {values} of {', '.join(attributes)} both "
                f"make the group name '{name}'; rename a value so that '{GROUP_JOIN}' does not join them alike"
            )
    return cells


def _like_with_like_pairs(
    groups: tuple[str, ...], cells: dict[str, tuple[str, ...]], references: list[str], *, all_pairs: bool
) -> tuple[tuple[str, str], ...]:
    """(group, reference) pairs of cells that differ in exactly one attribute.

    Each cell is compared with the cell that has that one attribute set to the attribute's
    reference, so a skin-tone comparison holds gender fixed and vice versa. With ``all_pairs``,
    every pair of cells differing in one attribute; the one holding the reference value, if
    either does, is the reference. For a single attribute this is group vs reference (and all pairs).
    """
    name_of = {cells[g]: g for g in groups}
    pairs = []
    for group in groups:
        cell = cells[group]
        for i, reference in enumerate(references):
            partner = name_of.get((*cell[:i], reference, *cell[i + 1 :]))
            if cell[i] != reference and partner is not None:
                pairs.append((group, partner))
    if all_pairs:
        seen = set(pairs)
        for a, b in itertools.combinations(groups, 2):
            differ = [i for i, (x, y) in enumerate(zip(cells[a], cells[b], strict=True)) if x != y]
            if len(differ) == 1 and (a, b) not in seen and (b, a) not in seen:
                pairs.append((a, b))
    return tuple(pairs)


def _facts(state: RunState, datasets: list[Dataset], models: list[Model]) -> dict[str, Any]:
    loaded = state.loaded[0] if state.loaded is not None else datasets
    spec_of = {d.name: spec for d, spec in zip(loaded, state.dataset_specs, strict=True)}
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
                "spec": spec_of[d.name].text,
                "description": d.description,
                "images": len(d.samples),
                "fingerprint": d.fingerprint(),
                "attributes": list(d.attributes),
                "emotions": list(d.emotions),
                "composition": _composition(d),
                "dataset_bias": dataset_bias.describe(d),
                "exclusions": _exclusions(d),
                "notes": list(d.notes),
            }
            for d in datasets
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
    """One grouping's count tensor (intersections too), so every record can be recomputed from the JSON.

    Per-subject counts stay out (they grow with the number of people); the entry says whether the
    grouping was clustered and over how many subjects.
    """
    t = table.tensor
    entry: dict[str, Any] = {
        "model": table.model,
        "dataset": table.dataset,
        "attribute": t.attribute,
        "groups": list(t.groups),
        "labels": list(t.labels),
        "outcomes": list(t.outcomes),
        "counts": t.counts.tolist(),
        "clustered": t.clusters is not None,
    }
    if t.clusters is not None:
        entry["subjects"] = len(t.clusters.group)
    return entry


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
