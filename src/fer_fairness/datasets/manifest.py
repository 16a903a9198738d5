"""The generic manifest loader: a CSV or Parquet sample table next to (or above) its images."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pandas as pd

from fer_fairness.datasets._hygiene import decode_problem, excluding, path_problem
from fer_fairness.datasets._table import (
    REQUIRED_COLUMNS,
    Dataset,
    abbreviation_notes,
    attribute_columns,
    is_missing,
    validate_samples,
)
from fer_fairness.errors import ConfigError, DatasetError, DatasetWarning, FairnessError
from fer_fairness.specs import Spec, check_options, value_map

OPTIONS = ("name", "attributes", "map", "on_error", *REQUIRED_COLUMNS)


def read_table(path: Path, *, what: str, error: type[FairnessError] = DatasetError) -> pd.DataFrame:
    """Read a CSV or Parquet file as strings (row labels 0..n-1), one clear error if unreadable.

    Cells are kept as written ("NA" stays "NA"); what counts as missing is decided where values are used.
    """
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path).reset_index(drop=True)
            header = [str(c) for c in table.columns]
            table = table.map(lambda v: "" if pd.isna(v) else str(v))
        elif path.suffix.lower() in (".csv", ".txt"):
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            # pandas renames a repeated header ("race" -> "race.1"), which would be tested as an
            # attribute of its own; read the header as written to catch it.
            header = list(pd.read_csv(path, dtype=str, keep_default_na=False, header=None, nrows=1).iloc[0])
        else:
            raise error(f"{what} file {path}: expected a .csv or .parquet file")
    except FairnessError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for one cause: a file we cannot parse
        raise error(f"{what} file {path} could not be read: {exc}") from None
    stripped = [h.strip() for h in header]
    repeated = sorted({h for h in stripped if stripped.count(h) > 1})
    if repeated:
        raise error(
            f"{what} file {path}: column(s) {', '.join(repr(h) for h in repeated)} appear more than once in the "
            "header; rename or drop the extra copies"
        )
    return table


def rename_columns(
    table: pd.DataFrame,
    spec: Spec,
    columns: tuple[str, ...],
    *,
    source: str,
    what: str,
    error: type[FairnessError] = DatasetError,
) -> pd.DataFrame:
    """Apply ``?COLUMN=NAME_IN_FILE`` for each of ``columns`` (manifests and predictions files alike).

    Two columns mapped from one, a mapped column the file lacks, or a mapping that would hide a column
    the file already has under that name are errors naming the option.
    """
    mapping = {spec.options[c]: c for c in columns if c in spec.options}
    sources = [spec.options[c] for c in columns if c in spec.options]
    if len(mapping) < len(sources):
        shared = sorted({c for c in sources if sources.count(c) > 1})
        raise ConfigError(
            f"{what} '{spec.text}': column(s) {', '.join(shared)} mapped onto two of {', '.join(columns)}; "
            "each needs its own"
        )
    absent = [f"?{target}={column}" for column, target in mapping.items() if column not in table.columns]
    if absent:
        has = ", ".join(map(str, table.columns))
        raise error(f"{source}: {', '.join(absent)} names a column the file lacks (file has: {has})")
    clashes = [
        f"?{target}={column}" for column, target in mapping.items() if target in table.columns and target != column
    ]
    if clashes:
        raise error(
            f"{source}: {', '.join(clashes)} would replace the column that already has that name; "
            "rename or drop one of the two"
        )
    return table.rename(columns=mapping)


def load_manifest(spec: Spec, *, cache_dir: Path | None = None, **_context) -> Dataset:
    """``manifest:PATH?name=N&emotion=COL&...``: map other column names onto the required ones."""
    check_options(spec, OPTIONS, what="dataset")
    named = spec.names("attributes", what="dataset")
    values = value_map(spec, "map", what="dataset")
    exclude = excluding(spec)
    path = Path(spec.target).expanduser()
    source = f"manifest {path}"
    table = read_table(path, what="manifest")
    table = rename_columns(table, spec, REQUIRED_COLUMNS, source=f"manifest {path}", what="dataset")
    attributes = named or attribute_columns(table.columns)
    table = _apply_map(table, values, attributes=attributes, source=source)
    table, exclusions = _missing_values(table, attributes=attributes, exclude=exclude)
    if table.empty and not exclusions.empty:
        raise DatasetError(f"{source}: no samples left to evaluate ({len(exclusions)} excluded for missing values)")
    samples, attrs, emotions = validate_samples(table, source=source, attributes=named)
    root = path.resolve().parent
    _check_paths(samples, root=root, source=source)
    samples, exclusions = _check_images(
        samples, root=root, source=source, exclude=exclude, exclusions=exclusions, attributes=attrs, cache_dir=cache_dir
    )
    notes = abbreviation_notes(samples, attrs)
    for note in notes:
        warnings.warn(DatasetWarning(f"{source}: {note}"), stacklevel=2)
    return Dataset(
        name=spec.option("name") or path.stem,
        root=root,
        samples=samples,
        attributes=attrs,
        emotions=emotions,
        description=f"manifest {path}",
        exclusions=exclusions,
        notes=tuple(notes),
    )


def _apply_map(
    table: pd.DataFrame, values: dict[str, dict[str, str]], *, attributes: tuple[str, ...], source: str
) -> pd.DataFrame:
    """Replace values as ``?map=`` says, before anything is grouped; an entry that matches nothing is a typo."""
    unknown = [a for a in values if a not in attributes]
    if unknown:
        raise DatasetError(
            f"{source}: ?map= names {', '.join(unknown)}, which is not a compared attribute "
            f"(attributes: {', '.join(attributes) or 'none'})"
        )
    table = table.copy()
    for attribute, replace in values.items():
        if attribute not in table.columns:
            continue  # validate_samples names the absent column
        cells = table[attribute].astype(str).str.strip()
        unused = [old for old in replace if not (cells == old).any()]
        if unused:
            raise DatasetError(
                f"{source}: ?map= gives {attribute} value(s) {', '.join(repr(v) for v in unused)} that no sample "
                f"has (values: {', '.join(repr(v) for v in sorted(cells.unique())[:10])})"
            )
        table[attribute] = cells.map(lambda v, replace=replace: replace.get(v, v))
    return table


def _missing_values(
    table: pd.DataFrame, *, attributes: tuple[str, ...], exclude: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off the samples with a missing attribute value where the user opted in to exclusion.

    Without the opt-in nothing is split off and validate_samples stops on the first such attribute.
    """
    columns = ["path", "sample_id", "reason", "detail", *attributes]  # the id lets a model's answer be set aside
    present = [a for a in attributes if a in table.columns]  # an absent column is validate_samples' error
    if not exclude or not present:
        return table, pd.DataFrame(columns=columns)
    missing = pd.DataFrame({a: is_missing(table[a]) for a in present})
    rows = missing.any(axis=1)
    exclusions = pd.DataFrame(
        [
            {
                "path": str(table.at[i, "path"]).strip() if "path" in table.columns else "",
                "sample_id": str(table.at[i, "sample_id"]).strip() if "sample_id" in table.columns else None,
                "reason": "missing " + ", ".join(a for a in present if missing.at[i, a]),
                "detail": f"row {i + 1}" + (f", sample {table.at[i, 'sample_id']}" if "sample_id" in table else ""),
                **{a: None if missing.at[i, a] else str(table.at[i, a]).strip() for a in attributes},
            }
            for i in table.index[rows]
        ],
        columns=columns,
    )
    exclusions = exclusions.astype(object).where(exclusions.notna(), None)  # unknown is None, as the loaders'
    return table.loc[~rows].reset_index(drop=True), exclusions.sort_values("path", kind="stable", ignore_index=True)


def _check_paths(samples: pd.DataFrame, *, root: Path, source: str) -> None:
    """Every image must exist and stay inside the dataset root (symlinks resolved)."""
    paths = samples["path"]
    problems = paths.map(_path_problems(pd.unique(paths), root=root))
    escaping = paths[problems == "escapes"].tolist()
    missing = paths[problems == "missing"].tolist()
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


def _path_problems(paths, *, root: Path) -> dict[str, str | None]:
    """path_problem for each distinct path, one resolve and one listing per folder instead of a
    filesystem walk per image (a million rows in a few folders take seconds, not minutes).

    A name the listing does not show as a plain file (a symlink, a case-insensitive match, a
    sub-folder) falls back to path_problem, so the verdicts are path_problem's own."""
    folders: dict[str, tuple[Path, dict[str, os.DirEntry]] | None] = {}
    verdicts: dict[str, str | None] = {}
    for rel in paths:
        folder, name = os.path.split(rel)
        if folder not in folders:
            real = (root / folder).resolve()
            try:
                with os.scandir(real) as entries:
                    folders[folder] = (real, {e.name: e for e in entries})
            except OSError:
                folders[folder] = None  # no such folder (or unreadable): path_problem says which
        listed = folders[folder]
        entry = listed[1].get(name) if listed is not None and name not in ("", ".", "..") else None
        if entry is not None and listed[0].is_relative_to(root) and not entry.is_symlink() and entry.is_file():
            verdicts[rel] = None
        else:
            verdicts[rel] = path_problem(root, rel)
    return verdicts


def _check_images(
    samples: pd.DataFrame,
    *,
    root: Path,
    source: str,
    exclude: bool,
    exclusions: pd.DataFrame,
    attributes: tuple[str, ...],
    cache_dir: Path | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every image must decode: a truncated file must not reach a model. Stop, or exclude and list."""
    broken = _undecodable(samples["path"].tolist(), root=root, cache_dir=cache_dir)
    if not broken:
        return samples, exclusions
    if not exclude:
        first = next(iter(broken))
        raise DatasetError(
            f"{source}: {len(broken)} image(s) cannot be decoded (e.g. {first}: {broken[first]}); replace them "
            "with intact copies, or add ?on_error=exclude to leave them out and list them in the report"
        )
    rows = samples["path"].isin(broken)
    added = pd.DataFrame(
        [
            {
                "path": rel,
                "sample_id": row["sample_id"],
                "reason": "unreadable image",
                "detail": broken[rel],
                **{a: row[a] for a in attributes},
            }
            for rel, (_, row) in zip(samples.loc[rows, "path"], samples.loc[rows].iterrows(), strict=True)
        ]
    )
    merged = pd.concat([frame for frame in (exclusions, added) if not frame.empty], ignore_index=True)
    merged = merged.astype(object).where(merged.notna(), None)
    return samples.loc[~rows].reset_index(drop=True), merged.sort_values("path", kind="stable", ignore_index=True)


def _undecodable(paths: list[str], *, root: Path, cache_dir: Path | None) -> dict[str, str]:
    """Relative path -> why Pillow cannot read it. Each file is decoded once per (size, mtime): the
    verdicts are remembered under ``cache_dir`` (a memo, so concurrent writers lose nothing that matters)."""
    memo_path = cache_dir / "decode-checks.json" if cache_dir is not None else None
    memo: dict[str, str] = {}
    if memo_path is not None and memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}  # a damaged memo is rebuilt, never trusted
    broken, changed = {}, False
    folders: dict[str, Path] = {}  # each folder resolved once (symlinked folders included), not each file
    for rel in dict.fromkeys(paths):  # a file listed twice is checked once
        folder, name = os.path.split(rel)
        if folder not in folders:
            folders[folder] = (root / folder).resolve()
        target = folders[folder] / name
        stat = target.stat()
        key = f"{target}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in memo:
            memo[key] = decode_problem(target) or ""
            changed = True
        if memo[key]:
            broken[rel] = memo[key]
    if changed and memo_path is not None:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = memo_path.with_name(f".{memo_path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(memo), encoding="utf-8")
        os.replace(temporary, memo_path)
    return broken


def manifest(path: str | os.PathLike[str], **options: str) -> Dataset:
    """A manifest as a Dataset, from Python: ``manifest("faces.csv", name="mine", emotion="label")``.

    The options are those of the ``manifest:`` spec (name, attributes, map, on_error and the column
    mappings), with the same checks; what a conftest's dataset factory returns.
    """
    from urllib.parse import quote

    query = "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe=',;:=')}" for k, v in options.items())
    spec_text = f"manifest:{os.fspath(path)}" + (f"?{query}" if query else "")
    from fer_fairness.datasets import DATASETS

    return load_manifest(DATASETS.parse(spec_text))
