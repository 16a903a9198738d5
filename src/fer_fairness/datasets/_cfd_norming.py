"""The CFD norming workbook (``CFD 3.0 Norming Data and Codebook.xlsx``): the models' self-reports.

Each norming sheet (CFD, CFD-MR, CFD-I) has decorative rows above its header; the header row is the
first one with a ``Model`` cell. Model keys look like ``AF-200`` (``IF601-519`` in the India sheets),
so rows are matched on (race letter, gender letter, model number). Sheets without a ``Model`` header
(the codebook) and rows whose ``Model`` is not a key (notes, blank lines) are not data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from fer_fairness.errors import DatasetError

WORKBOOK_GLOB = "CFD*Norming Data and Codebook.xlsx"
KEY_COLUMN = "Model"
# Workbook column -> sample-table column (self-reports; the file name already gives race and gender).
SELF_REPORTS = {"RaceSelf": "race_self", "EthnicitySelf": "ethnicity_self", "GenderSelf": "gender_self"}
_HEADER_SEARCH_ROWS = 30
_KEY = re.compile(r"([A-Z])([A-Z])-?(\d+)(?:-\d+)?")

ModelKey = tuple[str, str, int]


def find_workbook(root: Path, option: str | None) -> Path | None:
    """The workbook to read: ``?norming=PATH`` (relative to ROOT or absolute), none for ``?norming=none``,
    else the one file matching the CFD name in ROOT, if there is one."""
    if option is not None:
        if option.lower() == "none":
            return None
        path = Path(option).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DatasetError(f"cfd: norming workbook not found: {path}; fix ?norming= or pass ?norming=none")
        return path
    found = sorted(root.glob(WORKBOOK_GLOB))
    if len(found) > 1:
        raise DatasetError(
            f"cfd {root}: several norming workbooks ({', '.join(p.name for p in found)}); choose one with ?norming=FILE"
        )
    return found[0] if found else None


def read_self_reports(
    path: Path, *, races: Mapping[str, str], genders: Mapping[str, str]
) -> dict[ModelKey, dict[str, str]]:
    """{(race, gender, model number): {"race_self": ..., ...}} from every norming sheet in ``path``.

    Single-letter codes are spelled out with the file-name tables (``races``, ``genders``); other
    values are kept as written. The first sheet to give a model a value wins.
    """
    try:
        import openpyxl
    except ImportError:
        raise DatasetError(
            f"cfd: reading the norming workbook {path} needs the openpyxl package (pip install openpyxl); "
            "or pass ?norming=none to load without the self-reports"
        ) from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and XML errors for one cause: a bad file
        raise DatasetError(f"cfd: norming workbook {path} could not be read: {exc}") from None
    reports: dict[ModelKey, dict[str, str]] = {}
    sheets_with_key = 0
    try:
        for sheet in book.worksheets:
            rows = sheet.iter_rows(values_only=True)
            columns = _header(rows)
            if columns is None:
                continue
            sheets_with_key += 1
            key_at = columns[KEY_COLUMN]
            for row in rows:
                key = _key(row[key_at] if key_at < len(row) else None)
                if key is None:
                    continue
                entry = reports.setdefault(key, {})
                for header, column in SELF_REPORTS.items():
                    if header in columns and columns[header] < len(row):
                        value = _spell(column, row[columns[header]], races, genders)
                        if value and not entry.get(column):
                            entry[column] = value
    finally:
        book.close()
    if not sheets_with_key:
        raise DatasetError(
            f"cfd: norming workbook {path} has no sheet with a '{KEY_COLUMN}' header in its first "
            f"{_HEADER_SEARCH_ROWS} rows; pass ?norming=none to load without it"
        )
    return reports


def _header(rows) -> dict[str, int] | None:
    for _, row in zip(range(_HEADER_SEARCH_ROWS), rows, strict=False):
        cells = [str(v).strip() if v is not None else "" for v in row]
        if KEY_COLUMN in cells:
            return {name: i for i, name in reversed(list(enumerate(cells))) if name}
    return None


def _key(value: object) -> ModelKey | None:
    match = _KEY.fullmatch(str(value or "").strip().upper())
    return (match[1], match[2], int(match[3])) if match else None


def _spell(column: str, value: object, races: Mapping[str, str], genders: Mapping[str, str]) -> str:
    text = "" if value is None else str(value).strip()
    table = genders if column == "gender_self" else races
    return table.get(text.upper(), text)
