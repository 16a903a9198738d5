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
    """What every adapter is handed: the seed, where it may cache, whether to show progress."""

    seed: int
    cache_dir: Path
    progress: bool = True


class Model(Protocol):
    """A model under test. ``name`` appears in test ids; ``describe`` goes into the run facts."""

    name: str

    def describe(self) -> dict[str, str]: ...

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame: ...
