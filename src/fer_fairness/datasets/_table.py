"""The sample table: the one shape every dataset loader returns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_fairness.errors import DatasetError
from fer_fairness.labels import EMOTIONS

REQUIRED_COLUMNS = ("sample_id", "path", "emotion", "subject_id")
# Columns named source_* carry facts about the raw data (a raw code, mouth open/closed); they are
# reported but never treated as demographic attributes.
SOURCE_PREFIX = "source_"


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A loaded dataset: the sample table plus what it declares about itself."""

    name: str
    root: Path
    samples: pd.DataFrame
    attributes: tuple[str, ...]
    emotions: tuple[str, ...]
    description: str = ""
    # Samples left out where the user opted in to exclusion (never silently): one row each with
    # `path`, `reason` (a fixed phrase per kind of problem), optionally `detail`, and whatever
    # attribute values are known. Reported per reason and group.
    exclusions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason"]))
    # Plain-language remarks for the report (also issued as DatasetWarning when loading), e.g. a
    # study subset whose image count differs from the study's.
    notes: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """Hash of sorted sample ids, labels, attributes and image bytes: changes when the data does."""
        digest = hashlib.sha256()
        columns = [*REQUIRED_COLUMNS, *self.attributes]
        for row in self.samples.sort_values("sample_id")[columns].itertuples(index=False):
            digest.update("\x1f".join(map(str, row)).encode())
            image = self.root / row.path
            if image.is_file():
                digest.update(hashlib.sha256(image.read_bytes()).digest())
            digest.update(b"\x1e")
        return digest.hexdigest()[:16]


def validate_samples(
    samples: pd.DataFrame,
    *,
    source: str,
    attributes: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """Check a raw sample table; return it normalised with its attribute and emotion lists.

    ``source`` names the file or loader in every message. ``attributes`` defaults to every column
    that is neither required nor a ``source_*`` fact.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in samples.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"a sample table needs {', '.join(REQUIRED_COLUMNS)} (found: {', '.join(map(str, samples.columns))}); "
            f"map differently named columns with ?{missing[0]}=COLUMN"
        )
    if samples.empty:
        raise DatasetError(f"{source}: no samples (the table has a header but no rows)")
    samples = samples.reset_index(drop=True).copy()
    for column in REQUIRED_COLUMNS:
        blank = samples[column].isna() | (samples[column].astype(str).str.strip() == "")
        if blank.any():
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(blank)[:5])
            raise DatasetError(f"{source}: column '{column}' is empty in {int(blank.sum())} row(s) (rows {rows})")
        samples[column] = samples[column].astype(str).str.strip()
    samples["emotion"] = samples["emotion"].str.lower()

    duplicated = samples["sample_id"].duplicated(keep=False)
    if duplicated.any():
        ids = ", ".join(sorted(samples.loc[duplicated, "sample_id"].unique())[:5])
        raise DatasetError(f"{source}: duplicate sample_id values ({ids}); every sample needs a unique id")

    unknown = sorted(set(samples["emotion"]) - set(EMOTIONS))
    if unknown:
        raise DatasetError(
            f"{source}: emotion label(s) {', '.join(map(repr, unknown))} are not in the vocabulary "
            f"({', '.join(EMOTIONS)}); map them to canonical names first"
        )

    if attributes is None:
        attributes = [c for c in samples.columns if c not in REQUIRED_COLUMNS and not str(c).startswith(SOURCE_PREFIX)]
    attributes = tuple(attributes)
    absent = [a for a in attributes if a not in samples.columns]
    if absent:
        raise DatasetError(
            f"{source}: attribute column(s) {', '.join(absent)} not found "
            f"(columns: {', '.join(map(str, samples.columns))})"
        )
    for attribute in attributes:
        blank = samples[attribute].isna() | (samples[attribute].astype(str).str.strip() == "")
        if blank.any():
            raise DatasetError(
                f"{source}: attribute '{attribute}' has no value for {int(blank.sum())} sample(s) "
                f"(e.g. {samples.loc[blank, 'sample_id'].iloc[0]}); fill it in or drop those rows"
            )
        samples[attribute] = samples[attribute].astype(str).str.strip()

    declared = tuple(e for e in EMOTIONS if e in set(samples["emotion"])) if emotions is None else tuple(emotions)
    return samples.reset_index(drop=True), attributes, declared
