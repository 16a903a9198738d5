"""The generic manifest loader: a CSV or Parquet sample table next to (or above) its images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer_fairness.datasets._hygiene import path_problem
from fer_fairness.datasets._table import REQUIRED_COLUMNS, Dataset, validate_samples
from fer_fairness.errors import DatasetError, FairnessError
from fer_fairness.specs import Spec, check_options

OPTIONS = ("name", "attributes", *REQUIRED_COLUMNS)


def read_table(path: Path, *, what: str, error: type[FairnessError] = DatasetError) -> pd.DataFrame:
    """Read a CSV or Parquet file as strings (row labels 0..n-1), one clear error if unreadable."""
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path).reset_index(drop=True)
            return table.map(lambda v: "" if pd.isna(v) else str(v))
        if path.suffix.lower() in (".csv", ".txt"):
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas and pyarrow raise many types for one cause: a file we cannot parse
        raise error(f"{what} file {path} could not be read: {exc}") from None
    raise error(f"{what} file {path}: expected a .csv or .parquet file")


def load_manifest(spec: Spec, **_context) -> Dataset:
    """``manifest:PATH?name=N&emotion=COL&...``: map other column names onto the required ones."""
    check_options(spec, OPTIONS, what="dataset")
    path = Path(spec.target).expanduser()
    table = read_table(path, what="manifest")
    mapping = {spec.options[c]: c for c in REQUIRED_COLUMNS if c in spec.options}
    absent = [source for source in mapping if source not in table.columns]
    if absent:
        raise DatasetError(f"manifest {path}: mapped column(s) {', '.join(absent)} not found in {list(table.columns)}")
    clashes = [
        f"?{target}={source}" for source, target in mapping.items() if target in table.columns and target != source
    ]
    if clashes:
        raise DatasetError(
            f"manifest {path}: {', '.join(clashes)} would replace the column that already has that name; "
            "rename or drop one of the two"
        )
    table = table.rename(columns=mapping)
    attributes = spec.option("attributes")
    if attributes is not None and not attributes.strip(","):
        raise DatasetError(f"manifest {path}: ?attributes= is empty; name the columns, e.g. ?attributes=race,gender")
    samples, attrs, emotions = validate_samples(
        table,
        source=f"manifest {path}",
        attributes=[a for a in attributes.split(",") if a] if attributes else None,
    )
    root = path.resolve().parent
    _check_paths(samples, root=root, source=f"manifest {path}")
    return Dataset(
        name=spec.option("name") or path.stem,
        root=root,
        samples=samples,
        attributes=attrs,
        emotions=emotions,
        description=f"manifest {path}",
    )


def _check_paths(samples: pd.DataFrame, *, root: Path, source: str) -> None:
    """Every image must exist and stay inside the dataset root (symlinks resolved)."""
    escaping, missing = [], []
    for rel in samples["path"]:
        problem = path_problem(root, rel)
        if problem == "escapes":
            escaping.append(rel)
        elif problem == "missing":
            missing.append(rel)
    if escaping:
        raise DatasetError(
            f"{source}: {len(escaping)} path(s) leave the dataset folder {root} (e.g. {escaping[0]}); "
            "paths must be relative to the manifest's folder and stay inside it"
        )
    if missing:
        raise DatasetError(
            f"{source}: {len(missing)} image file(s) not found under {root} (e.g. {', '.join(missing[:3])}); "
            "check the path column: paths are relative to the manifest's folder"
        )
