"""The model contract: every adapter turns a dataset into an outcome table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ModelError
from fer_fairness.labels import EMOTIONS, NON_ANSWERS

# One row per sample: `outcome` is a canonical emotion (see labels.EMOTIONS) or a non-answer kind
# (labels.NON_ANSWERS); `raw` keeps the model's raw answer (or a reference to it), never parsed away.
OUTCOME_COLUMNS = ("sample_id", "outcome", "raw")
# Optional float columns, one per label the model scores: "score_anger", "score_happiness", ...
SCORE_PREFIX = "score_"


@dataclass(frozen=True, kw_only=True)
class PredictContext:
    """What every adapter is handed: the seed, where it may cache, whether to show progress, and
    the limits API adapters must respect (local models ignore those)."""

    seed: int
    cache_dir: Path
    # "bar" (a terminal), "lines" (plain lines in a CI log), "off"; True/False mean "bar"/"off".
    # Adapters pass it to fer_fairness.progress.bar rather than testing its truth.
    progress: bool | str = "bar"
    concurrency: int = 4  # API adapters: requests in flight at once
    timeout_s: float = 60.0  # API adapters: per request
    max_retries: int = 5  # API adapters: retries of 429 / 5xx / timeouts, with backoff and jitter
    budget_tokens: int | None = None  # API adapters: stop cleanly (results so far cached) past this
    engine: Any = None  # batch classifiers: where inference runs (None: here; engines.RayEngine: a Ray cluster)


class Model(Protocol):
    """A model under test. ``name`` appears in test ids; ``describe`` goes into the run facts.

    Adapters may also offer ``usage() -> dict[str, int]`` (calls made, cache hits, non-answers by
    kind, tokens used) for the terminal summary, and ``prompts() -> dict[str, str]`` (the rendered
    prompt or templates) for the report.
    """

    name: str

    def describe(self) -> dict[str, str]: ...

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame: ...


def check_model(model: object, spec: object) -> Model:
    """A model from outside the package (a conftest hook, an installed package): the contract's parts present."""
    text = getattr(spec, "text", str(spec))
    lacking = [
        part
        for part, ok in (
            ("a non-empty str name", isinstance(getattr(model, "name", None), str) and bool(model.name.strip())),
            ("describe()", callable(getattr(model, "describe", None))),
            ("predict(dataset, *, context)", callable(getattr(model, "predict", None))),
        )
        if not ok
    ]
    if lacking:
        raise ModelError(
            f"model '{text}' gave {type(model).__name__}, which lacks {', '.join(lacking)}; a model needs name, "
            "describe() and predict(dataset, *, context) (fer_fairness.BatchModel wraps a batch function)"
        )
    return model  # type: ignore[return-value]


def check_outcomes(outcomes: object, *, model: str, dataset: str) -> pd.DataFrame:
    """What predict returned, checked before it is counted: a table with the outcome columns, each
    outcome a canonical emotion or a non-answer (a model from outside the package may get this wrong)."""
    if not isinstance(outcomes, pd.DataFrame):
        raise ModelError(
            f"model '{model}' returned {type(outcomes).__name__} for dataset '{dataset}'; predict must return a "
            f"pandas DataFrame with columns {', '.join(OUTCOME_COLUMNS)}"
        )
    absent = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if absent:
        raise ModelError(
            f"model '{model}' returned a table without column(s) {', '.join(absent)} for dataset '{dataset}' "
            f"(has: {', '.join(map(str, outcomes.columns))})"
        )
    values = set(outcomes["outcome"].astype(str).unique())
    unknown = sorted(values - set(EMOTIONS) - set(NON_ANSWERS))
    if unknown or outcomes["outcome"].isna().any():
        shown = ", ".join(map(repr, unknown[:5])) or "missing values"
        raise ModelError(
            f"model '{model}' answered {shown} on dataset '{dataset}', which is neither a canonical emotion "
            f"({', '.join(EMOTIONS)}) nor a non-answer ({', '.join(NON_ANSWERS)}); map its labels with "
            "fer_fairness.labels.canonical, or wrap it in fer_fairness.BatchModel, which does"
        )
    return outcomes
