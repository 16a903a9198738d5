"""The run's state: options and policy in, verdict records and run facts out. Knows nothing of pytest.

Only light modules are imported here: the numeric stack loads in ``prepare``, when a fairness
test first needs it, never when pytest merely loads the plugin.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_fairness.config import Thresholds
from fer_fairness.datasets import DATASETS
from fer_fairness.models import MODELS
from fer_fairness.specs import Registry, Spec

if TYPE_CHECKING:
    from fer_fairness.baseline import Baseline
    from fer_fairness.criteria.records import Planned, Record

DEFAULT_DATASET = "synthetic"
DEFAULT_MODEL = "hog-probe"


@dataclass(kw_only=True)
class RunState:
    """One fairness run, kept in ``config.stash``; ``prepare`` computes once per process."""

    thresholds: Thresholds
    dataset_specs: tuple[Spec, ...]
    model_specs: tuple[Spec, ...]
    seed: int
    cache_dir: Path
    report_dir: Path
    progress: bool | str = "off"  # see fer_fairness.progress: "bar", "lines" or "off"
    limits: dict[str, Any] = field(default_factory=dict)  # API limits for PredictContext (concurrency, ...)
    datasets: Registry = DATASETS  # with what conftest hooks added
    models: Registry = MODELS
    say: Callable[[str], None] = lambda line: None
    engine: Any = None  # where batch classifiers infer: None (here) or engines.RayEngine
    baseline: Baseline | None = None  # an earlier run, for no_regression (--fairness-baseline)
    outcomes: Any = None  # every sample's outcome (pandas DataFrame), written beside fairness.json
    loaded: Any = None  # (datasets, models), once loaded and built (pipeline.load)
    planned: dict[str, list[Planned]] | None = None  # the tests, by criterion, named before any prediction
    records: dict[str, list[Record]] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    _index: dict[tuple[str, str], Record] | None = None
    evaluation_s: float | None = None  # wall time of prepare's load, predict and evaluate, when it ran here

    @classmethod
    def from_options(
        cls,
        *,
        thresholds: Thresholds,
        datasets: Sequence[str],
        models: Sequence[str],
        dataset_registry: Registry = DATASETS,
        model_registry: Registry = MODELS,
        **settings: Any,
    ) -> RunState:
        """Parse the spec strings now, so a typo is a usage error before any work starts."""
        return cls(
            thresholds=thresholds,
            dataset_specs=tuple(dataset_registry.parse(s) for s in (datasets or [DEFAULT_DATASET])),
            model_specs=tuple(model_registry.parse(s) for s in (models or [DEFAULT_MODEL])),
            datasets=dataset_registry,
            models=model_registry,
            **settings,
        )

    def plan(self) -> dict[str, list[Planned]]:
        """Load the datasets and build the models (once), and name every test; no model is asked."""
        if self.planned is None:
            from fer_fairness.pipeline import plan

            grouped: dict[str, list[Planned]] = {}
            for planned in plan(self):
                grouped.setdefault(planned.criterion, []).append(planned)
            self.planned = grouped
        return self.planned

    def prepare(self, pairs: set[tuple[str, str]] | None = None) -> dict[str, list[Record]]:
        """Predict, count and evaluate (once) the (model, dataset) ``pairs`` (None: all), grouped by criterion."""
        if self.records is None:
            from fer_fairness.pipeline import run

            started = time.perf_counter()
            records, self.facts = run(self, pairs)
            self.evaluation_s = time.perf_counter() - started
            grouped: dict[str, list[Record]] = {}
            for record in records:
                grouped.setdefault(record.criterion, []).append(record)
            self.records = grouped
        return self.records

    def record_for(self, planned: Planned) -> Record:
        """The record of a planned test (evaluating every pair first, if nothing was evaluated yet)."""
        records = self.prepare()
        if self._index is None:
            self._index = {(r.criterion, r.test_id): r for rs in records.values() for r in rs}
        found = self._index.get((planned.criterion, planned.test_id))
        if found is None:  # plan and evaluation enumerate tests with one function: this is a bug
            raise RuntimeError(f"fer-fairness: planned test {planned.test_id} ({planned.criterion}) was not evaluated")
        return found

    def hand_off(self, folder: Path) -> Path:
        """Write the evaluated records and facts for xdist workers, who read them rather than evaluate.

        Workers must never call a model: with a flaky API each would re-ask what failed on the
        controller, pay again, and report outcomes that differ from the controller's run facts.
        """
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="handoff-", suffix=".pickle", dir=folder)
        with os.fdopen(handle, "wb") as out:
            pickle.dump((self.records, self.facts), out)
        return Path(name)

    def take_over(self, path: Path) -> None:
        """Adopt the records and facts a controller handed off (see ``hand_off``)."""
        with path.open("rb") as handle:  # written by this run's own controller, in its cache folder
            self.records, self.facts = pickle.load(handle)
