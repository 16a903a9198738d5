"""User mapping files: extend or override a loader's table of raw expression codes without touching code.

Two forms, chosen by suffix:

* CSV with a header, the key column first: ``code,emotion,mouth`` / ``AC,anger,closed``;
* TOML, one key per code, a label or a table: ``XO = "surprise"`` or ``SO = {emotion = "surprise", mouth = "open"}``.

Every emotion must be a canonical label (labels.py); keys are matched case-insensitively.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Sequence
from pathlib import Path

from fer_fairness.errors import DatasetError
from fer_fairness.labels import EMOTIONS


def read_mapping(path: Path, *, what: str, key: str, fields: Sequence[str] = ("emotion",)) -> dict[str, dict[str, str]]:
    """Read ``path`` into {KEY (upper case): {"emotion": ..., other fields...}}.

    ``what`` names the file in messages ("RADIATE code file"); ``key`` is the CSV key column's name;
    ``fields`` are the columns allowed besides it, the first of which ("emotion") is required.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        if path.suffix.lower() == ".toml":
            entries = _read_toml(path, what=what)
        elif path.suffix.lower() in (".csv", ".txt"):
            entries = _read_csv(path, key=key, fields=fields, what=what)
        else:
            raise DatasetError(f"{what} {path}: expected a .csv or .toml file")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, csv.Error) as exc:
        raise DatasetError(f"{what} {path} could not be read: {exc}") from None
    mapping: dict[str, dict[str, str]] = {}
    for raw, entry in entries:
        unknown = sorted(set(entry) - set(fields))
        if unknown:
            raise DatasetError(
                f"{what} {path}: entry '{raw}' has unknown field(s) {', '.join(unknown)} (allowed: {', '.join(fields)})"
            )
        emotion = str(entry.get("emotion", "")).strip().lower()
        if emotion not in EMOTIONS:
            raise DatasetError(
                f"{what} {path}: entry '{raw}' maps to {emotion!r}, which is not a label of the vocabulary "
                f"({', '.join(EMOTIONS)})"
            )
        mapping[raw.strip().upper()] = {**{k: str(v).strip() for k, v in entry.items()}, "emotion": emotion}
    if not mapping:
        raise DatasetError(f"{what} {path}: no entries")
    return mapping


def _read_toml(path: Path, *, what: str) -> list[tuple[str, dict[str, object]]]:
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    entries = []
    for raw, value in document.items():
        if isinstance(value, str):
            entries.append((raw, {"emotion": value}))
        elif isinstance(value, dict):
            entries.append((raw, value))
        else:
            raise DatasetError(
                f"{what} {path}: entry '{raw}' must be a label or a table such as {{emotion = \"anger\"}}; "
                f"got {value!r}"
            )
    return entries


def _read_csv(path: Path, *, key: str, fields: Sequence[str], what: str) -> list[tuple[str, dict[str, object]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        if not header or header[0] != key or "emotion" not in header:
            raise DatasetError(
                f"{what} {path}: the header must be {key},{','.join(fields)} (found: {','.join(header) or 'nothing'})"
            )
        reader.fieldnames = header
        entries = []
        for line, row in enumerate(reader, start=2):
            raw = (row.pop(key) or "").strip()
            if not raw:
                raise DatasetError(f"{what} {path}: line {line} has no {key}")
            entries.append((raw, {k: v for k, v in row.items() if k is not None and (v or "").strip()}))
        return entries
