"""The model contract: every adapter turns a dataset into an outcome table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from fer_fairness.datasets._table import Dataset

# One row per sample: `outcome` is a canonical emotion (see labels.EMOTIONS) or a non-answer kind
# (labels.NON_ANSWERS); `raw` keeps the model's raw answer (or a reference to it), never parsed away.
OUTCOME_COLUMNS = ("sample_id", "outcome", "raw")


@dataclass(frozen=True, kw_only=True)
class PredictContext:
    """What every adapter is handed: the seed, where it may cache, whether to show progress, and
    the limits API adapters must respect (local models ignore those)."""

    seed: int
    cache_dir: Path
    progress: bool = True
    concurrency: int = 4  # API adapters: requests in flight at once
    timeout_s: float = 60.0  # API adapters: per request
    max_retries: int = 5  # API adapters: retries of 429 / 5xx / timeouts, with backoff and jitter
    budget_tokens: int | None = None  # API adapters: stop cleanly (results so far cached) past this


class Model(Protocol):
    """A model under test. ``name`` appears in test ids; ``describe`` goes into the run facts.

    Adapters may also offer ``usage() -> dict[str, int]`` (calls made, cache hits, non-answers by
    kind, tokens used) for the terminal summary, and ``prompts() -> dict[str, str]`` (the rendered
    prompt or templates) for the report.
    """

    name: str

    def describe(self) -> dict[str, str]: ...

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame: ...
