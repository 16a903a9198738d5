"""A predictions file as a model: the vendor-acceptance path (the vendor ran its model, we judge it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_fairness.datasets._table import Dataset
from fer_fairness.datasets.manifest import read_table
from fer_fairness.errors import ModelError
from fer_fairness.labels import EMOTIONS, NON_ANSWERS
from fer_fairness.models._base import PredictContext
from fer_fairness.specs import Spec, check_options

# An empty cell means the model gave no usable answer: counted as unparseable, never as a label.
EMPTY_PREDICTION = "unparseable"


class PredictionsModel:
    """``predictions:PATH?name=N``: columns sample_id, prediction and optionally dataset."""

    def __init__(self, spec: Spec):
        check_options(spec, ("name",), what="model")
        self.path = Path(spec.target).expanduser()
        self.name = spec.option("name") or self.path.stem
        table = read_table(self.path, what="predictions", error=ModelError)
        missing = [c for c in ("sample_id", "prediction") if c not in table.columns]
        if missing:
            raise ModelError(
                f"predictions {self.path}: missing column(s) {', '.join(missing)}; "
                "expected sample_id, prediction and optionally dataset"
            )
        table = table.copy()
        table["raw"] = table["prediction"].astype(str)
        outcome = table["prediction"].astype(str).str.strip().str.lower()
        table["outcome"] = outcome.where(outcome != "", EMPTY_PREDICTION)
        unknown = sorted(set(table["outcome"]) - set(EMOTIONS) - set(NON_ANSWERS))
        if unknown:
            first = int(np.flatnonzero(table["outcome"].isin(unknown))[0]) + 1
            raise ModelError(
                f"predictions {self.path}: label(s) {', '.join(map(repr, unknown[:5]))} are neither emotions "
                f"({', '.join(EMOTIONS)}) nor non-answers ({', '.join(NON_ANSWERS)}); first in data row {first}"
            )
        if "dataset" in table.columns and (table["dataset"].str.strip() == "").any():
            blank = int((table["dataset"].str.strip() == "").sum())
            raise ModelError(
                f"predictions {self.path}: {blank} row(s) have an empty dataset cell; fill in the dataset name"
            )
        self.table = table

    def describe(self) -> dict[str, str]:
        return {"kind": "predictions", "path": str(self.path), "rows": str(len(self.table))}

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame:
        table = self.table
        if "dataset" in table.columns:
            table = table[table["dataset"] == dataset.name]
            if table.empty:
                raise ModelError(
                    f"predictions {self.path}: no rows for dataset '{dataset.name}' in its dataset column "
                    f"(has: {', '.join(sorted(self.table['dataset'].unique())[:5])})"
                )
        return table[["sample_id", "outcome", "raw"]].reset_index(drop=True)
