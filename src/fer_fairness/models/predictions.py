"""A predictions file as a model: the vendor-acceptance path (the vendor ran its model, we judge it)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd

from fer_fairness.datasets._table import Dataset, is_missing
from fer_fairness.datasets.manifest import read_table, rename_columns
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.labels import EMOTIONS, NON_ANSWERS, canonical
from fer_fairness.models._base import SCORE_PREFIX, PredictContext
from fer_fairness.specs import Spec, check_options

# An empty cell means the model gave no usable answer: counted as unparseable, never as a label.
EMPTY_PREDICTION = "unparseable"
# The file's own columns; each may be renamed with ``?COLUMN=NAME_IN_FILE``, as manifests do.
COLUMNS = ("sample_id", "prediction", "dataset")
OPTIONS = ("name", "score_prefix", "map", *COLUMNS)


class PredictionsModel:
    """``predictions:PATH?name=N&sample_id=COL&prediction=COL&dataset=COL&score_prefix=P&map=WORD=LABEL``.

    Columns sample_id and prediction (an emotion under any of its usual names, or a non-answer),
    optionally dataset, and optionally ``score_<label>`` columns kept as ``score_<emotion>`` floats;
    with score columns the prediction column may be left out, the highest score being the prediction.
    """

    def __init__(self, spec: Spec):
        check_options(spec, OPTIONS, what="model")
        self.path = Path(spec.target).expanduser()
        self.name = spec.option("name") or self.path.stem
        source = f"predictions {self.path}"
        table = read_table(self.path, what="predictions", error=ModelError)
        table = rename_columns(table, spec, COLUMNS, source=source, what="model", error=ModelError)
        prefix = spec.option("score_prefix") or SCORE_PREFIX
        words = _label_map(spec)
        scored = _score_columns(table.columns, prefix=prefix, words=words, source=source)
        if "score_prefix" in spec.options and not scored:  # a mistyped prefix would silently drop every score
            raise ModelError(
                f"{source}: ?score_prefix={prefix} matches no column (file has: {', '.join(map(str, table.columns))})"
            )
        missing = [c for c in ("sample_id", "prediction") if c not in table.columns]
        if scored and missing == ["prediction"]:
            missing = []  # the highest score is the prediction
        if missing:
            raise ModelError(
                f"{source}: missing column(s) {', '.join(missing)} (file has: {', '.join(map(str, table.columns))}); "
                f"expected sample_id, prediction (or {prefix}<label> score columns) and optionally dataset; "
                "name other columns with ?sample_id=COL&prediction=COL"
            )
        has_prediction = "prediction" in table.columns
        if has_prediction:
            outcome = _outcomes(table["prediction"], words=words, source=source)
            raw = table["prediction"].astype(str)
        else:
            outcome = pd.Series("", index=table.index)  # every row is answered by its scores
        scores = _scores(table, scored, blank_allowed=outcome.isin(NON_ANSWERS), source=source, ruled=has_prediction)
        if not has_prediction:
            outcome, raw = _argmax(table, scored, scores, source=source)
        written = pd.unique(table["prediction"]).tolist() if has_prediction else []  # each distinct cell once
        labels = [c[len(prefix) :] for c in scored] + written
        _check_map_used(words, labels, source=source)
        if "dataset" in table.columns and (table["dataset"].str.strip() == "").any():
            blank = int((table["dataset"].str.strip() == "").sum())
            raise ModelError(f"{source}: {blank} row(s) have an empty dataset cell; fill in the dataset name")
        self.table = pd.DataFrame(
            {
                "sample_id": table["sample_id"],
                "outcome": outcome,
                "raw": raw,
                **({"dataset": table["dataset"]} if "dataset" in table.columns else {}),
                **{f"{SCORE_PREFIX}{emotion}": scores[emotion] for emotion in EMOTIONS if emotion in scores},
            }
        )
        self.score_columns = tuple(f"{SCORE_PREFIX}{emotion}" for emotion in EMOTIONS if emotion in scores)

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
        return table[["sample_id", "outcome", "raw", *self.score_columns]].reset_index(drop=True)


def _word(text: str) -> str:
    """A label as compared: case and surrounding space ignored, as labels.canonical does."""
    return text.strip().lower()


def _label_map(spec: Spec) -> dict[str, str]:
    """``?map=happyish=happiness,no answer=refused``: the file's own words for an emotion or a non-answer.

    Split on ``,`` and ``=`` before %-unescaping (as the manifests' ?map=), so a word may hold either.
    """
    text = spec.raw_options.get("map", spec.options.get("map"))  # a Spec built in code has no raw_options
    words: dict[str, str] = {}
    for entry in filter(str.strip, (text or "").split(",")):
        old, eq, new = entry.partition("=")
        old, new = _word(unquote(old)), _word(unquote(new))
        label = new if new in NON_ANSWERS else canonical(new)
        if not eq or not old or label is None:
            raise ConfigError(
                f"model '{spec.text}': cannot read '{unquote(entry)}' in ?map=; write ?map=WORD=LABEL,... with an "
                f"emotion ({', '.join(EMOTIONS)}) or a non-answer ({', '.join(NON_ANSWERS)}) as LABEL, "
                "e.g. ?map=happyish=happiness"
            )
        if words.get(old, label) != label:
            raise ConfigError(f"model '{spec.text}': ?map= reads '{old}' as both {words[old]} and {label}")
        words[old] = label
    return words


def _check_map_used(words: dict[str, str], labels: list[str], *, source: str) -> None:
    """A ?map= word no label uses is a typo that would leave the label it meant to read unread."""
    used = {_word(str(label)) for label in labels} - {""}
    unused = [w for w in words if w not in used]
    if unused:
        raise ModelError(
            f"{source}: ?map= gives label(s) {', '.join(map(repr, unused))} that the file never uses "
            f"(labels: {', '.join(map(repr, sorted(used)[:10]))})"
        )


def _outcomes(cells: pd.Series, *, words: dict[str, str], source: str) -> pd.Series:
    """Each cell as a canonical emotion (any usual name, any case) or a non-answer; blank is unparseable."""
    # Each distinct cell read once (a file of a million rows holds a handful of words), then spread.
    codes, uniques = pd.factorize(cells.astype(str), use_na_sentinel=False)
    spoken = [_word(cell) for cell in uniques]
    read = [
        EMPTY_PREDICTION if w == "" else (words.get(w) or (w if w in NON_ANSWERS else canonical(w))) for w in spoken
    ]
    unknown_codes = [i for i, label in enumerate(read) if label is None]
    if unknown_codes:
        unknown = sorted({spoken[i] for i in unknown_codes})
        first = int(np.flatnonzero(np.isin(codes, unknown_codes))[0]) + 1
        raise ModelError(
            f"{source}: label(s) {', '.join(map(repr, unknown[:5]))} are neither emotions "
            f"({', '.join(EMOTIONS)}) nor non-answers ({', '.join(NON_ANSWERS)}); first in data row {first}; "
            "read the file's own words with ?map=WORD=LABEL"
        )
    return pd.Series(np.asarray(read, dtype=object)[codes], index=cells.index).astype(str)


def _score_columns(columns: pd.Index, *, prefix: str, words: dict[str, str], source: str) -> dict[str, str]:
    """{column in the file: canonical emotion} for the columns named ``<prefix><label>``, in file order."""
    scored = {
        str(c): canonical(words.get(_word(str(c)[len(prefix) :]), str(c)[len(prefix) :]))
        for c in columns
        if c not in COLUMNS and str(c).startswith(prefix)  # the prefix may be short ("p"): never a core column
    }
    unknown = [c for c, emotion in scored.items() if emotion is None]
    if unknown:
        raise ModelError(
            f"{source}: score column(s) {', '.join(map(repr, unknown[:5]))} name no emotion after '{prefix}' "
            f"(emotions: {', '.join(EMOTIONS)}, or their usual names such as happy); rename them or choose "
            "another prefix with ?score_prefix="
        )
    for emotion in dict.fromkeys(scored.values()):
        same = [c for c, e in scored.items() if e == emotion]
        if len(same) > 1:
            raise ModelError(f"{source}: score columns {', '.join(map(repr, same))} all score {emotion}; keep one")
    return scored


def _scores(
    table: pd.DataFrame, scored: dict[str, str], *, blank_allowed: pd.Series, source: str, ruled: bool
) -> dict[str, np.ndarray]:
    """{emotion: float scores}; a cell is a finite number, or blank (NaN) on a non-answer's row only."""
    scores = {}
    for column, emotion in scored.items():
        cells = table[column].astype(str).str.strip()
        blank = is_missing(cells).to_numpy()
        values = pd.to_numeric(cells.where(~blank, "nan"), errors="coerce").to_numpy(dtype=float)
        not_number = ~blank & ~np.isfinite(values)
        if not_number.any():
            row = int(np.flatnonzero(not_number)[0])
            raise ModelError(
                f"{source}: score column '{column}' holds {table[column].iloc[row]!r} in data row {row + 1}; "
                "every score must be a finite number"
            )
        missing = blank & ~blank_allowed.to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0]) + 1
            rule = (
                "only a row whose prediction is a non-answer (refused, unparseable, error) may leave its scores blank"
                if ruled
                else "with no prediction column every row needs every score (add one to mark non-answers)"
            )
            raise ModelError(f"{source}: score column '{column}' is blank in data row {row}; {rule}")
        scores[emotion] = values
    return scores


def _argmax(
    table: pd.DataFrame, scored: dict[str, str], scores: dict[str, np.ndarray], *, source: str
) -> tuple[pd.Series, pd.Series]:
    """The highest score's emotion per row, and that score as written. A tie is an error: breaking it
    by column order would hand the tied samples to whichever label the vendor's file lists first."""
    columns, emotions = list(scored), list(scored.values())
    matrix = np.column_stack([scores[e] for e in emotions])
    top = matrix.max(axis=1, keepdims=True)
    tied = (matrix == top).sum(axis=1) > 1
    if tied.any():
        row = int(np.flatnonzero(tied)[0])
        names = [c for c, is_top in zip(columns, matrix[row] == top[row, 0], strict=True) if is_top]
        raise ModelError(
            f"{source}: data row {row + 1} has its highest score in {len(names)} columns "
            f"({', '.join(names)}), so there is no prediction; add a prediction column to say which label won"
        )
    best = matrix.argmax(axis=1)
    outcome = pd.Series(np.asarray(emotions, dtype=object)[best], index=table.index).astype(str)
    written = table[columns].astype(str).to_numpy()
    raw = pd.Series(written[np.arange(len(best)), best], index=table.index)
    return outcome, raw
