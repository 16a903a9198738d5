"""The sample table: the one shape every dataset loader returns."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from fer_fairness._digests import read_digests, store_for
from fer_fairness.errors import DatasetError
from fer_fairness.labels import EMOTIONS

_FINGERPRINT_ROWS = 1 << 16  # rows hashed at a time (bounded memory at a million rows)
REQUIRED_COLUMNS = ("sample_id", "path", "emotion", "subject_id")
# Columns named source_* carry facts about the raw data (a raw code, mouth open/closed); they are
# reported but never treated as demographic attributes.
SOURCE_PREFIX = "source_"
# Ties the renders of one face drawn at several skin tones (counterfactual sets); never an attribute.
COUNTERFACTUAL_ID = "counterfactual_id"
# How spreadsheets and data frames write "no value" (R's write.csv writes NA, pandas NaN, JSON null),
# compared case-insensitively after stripping. Such a cell is missing, never a demographic group; a
# dataset where one of these is a real value (NA for North America) says so with ?map=.
MISSING_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>", "#n/a"})
MISSING_TEXT = "blank, NA, N/A, NaN, null, None, <NA> and #N/A count as missing"


def is_missing(values: pd.Series) -> pd.Series:
    """True where a cell holds no value: NaN/None, or a blank or missing-value marker as text."""
    return values.isna() | values.astype(str).str.strip().str.lower().isin(MISSING_VALUES)


def attribute_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """The columns compared as demographic attributes when none are named: all but required, source_*
    and counterfactual_id (which ties renders of one face together; it describes no person)."""
    return tuple(
        c
        for c in columns
        if c not in REQUIRED_COLUMNS and not str(c).startswith(SOURCE_PREFIX) and c != COUNTERFACTUAL_ID
    )


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

    @functools.cached_property
    def image_digests(self) -> pd.Series:
        """SHA-256 (hex) of each sample's image bytes, in sample order ("" where the file is absent);
        read once per dataset object, for the fingerprint and for pairing two runs image by image."""
        # Rows that share an image file read it once; each row then holds a code into the distinct
        # digests (a categorical: a few bytes a row, not a 64-character string per row).
        codes, paths = pd.factorize(self.samples["path"])
        store = self.__dict__.get("_digest_store")  # remember_digests: unchanged files cost a stat
        files = [os.path.join(str(self.root), path) for path in paths]  # as the models key the same store
        present = [i for i, name in enumerate(files) if os.path.isfile(name)]
        known = [""] * len(files)  # an absent file has no digest
        if store is not None:
            found, _ = read_digests([files[i] for i in present], store, hold_bytes=0)
        else:
            found = []
            for i in present:
                with open(files[i], "rb") as file:  # streamed: a large image is never held whole
                    found.append(hashlib.file_digest(file, "sha256").hexdigest())
        for i, digest in zip(present, found, strict=True):
            known[i] = digest
        digests, per_path = np.unique(np.asarray(known, dtype=object), return_inverse=True)
        return pd.Series(pd.Categorical.from_codes(per_path[codes], categories=digests), index=self.samples.index)

    def remember_digests(self, cache_dir: Path | None) -> None:
        """Have ``image_digests`` go through the digest store under ``cache_dir`` (_digests.py: a file
        unchanged since it was hashed costs a stat, not a read), so a warm run opens no image. The
        digests themselves are the same; call before their first use."""
        if cache_dir is not None and "image_digests" not in self.__dict__:
            # cached_property values live in the instance dict too; a frozen dataclass allows this
            self.__dict__["_digest_store"] = store_for(cache_dir, self.root)

    def fingerprint(self) -> str:
        """Hash of sorted sample ids, labels, attributes and image bytes: changes when the data does."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        # Column by column over the rows sorted by sample id, each column joined in Arrow: a Python
        # string per cell was most of the run's peak memory at a million rows. The bytes hashed are
        # "\x1f".join of the column's text (UTF-8 byte order is code point order, so Arrow's sort is
        # Python's), framed by the column's name and length, so no value can pass for another column's.
        import pyarrow as pa
        import pyarrow.compute as pc

        def text(column: str) -> pa.Array:
            values = pa.array(self.samples[column].astype(str), type=pa.large_string())
            if isinstance(values, pa.ChunkedArray):  # as a CSV or a concat left it
                values = values.combine_chunks()
            return values.fill_null("nan")  # as str() writes a missing value

        digest = hashlib.sha256()
        order = pc.sort_indices(text("sample_id"))
        separator = pa.scalar("\x1f", pa.large_string())
        # In slices of rows, so no column's whole text is ever held twice: "\x1f".join of a column is
        # the slices' joins with "\x1f" between them.
        slices = [order.slice(start, _FINGERPRINT_ROWS) for start in range(0, len(order), _FINGERPRINT_ROWS)]
        for column in [*REQUIRED_COLUMNS, *self.attributes]:
            values = text(column)
            digest.update(f"{column}\x1d{len(values)}\x1d".encode())
            for i, part in enumerate(slices):
                chosen = values.take(part)
                joined = pc.binary_join(
                    pa.LargeListArray.from_arrays(pa.array([0, len(chosen)], pa.int64()), chosen), separator
                )
                digest.update(b"\x1f" if i else b"")
                digest.update(joined[0].as_buffer())  # the slice's joined UTF-8 bytes
            digest.update(b"\x1e")
        # Each image's 32 digest bytes, by code (a file that is not there: 32 zero bytes)
        images = self.image_digests.array
        known = np.array([bytes.fromhex(d or "0" * 64) for d in images.categories], dtype="S32").view(np.uint8)
        codes = np.asarray(images.codes)
        for part in slices:
            digest.update(memoryview(np.ascontiguousarray(known.reshape(-1, 32)[codes[part.to_numpy()]])))
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
    if attributes is not None:
        # Checked first: a loader that copies a column per named attribute would otherwise report the
        # repeat as a repeated column.
        attributes = tuple(attributes)
        repeated = sorted({a for a in attributes if attributes.count(a) > 1})
        if repeated:
            raise DatasetError(f"{source}: attribute(s) {', '.join(repeated)} named more than once; name each once")
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
    duplicated = sorted({str(c) for c in samples.columns[samples.columns.duplicated()]})
    if duplicated:
        raise DatasetError(f"{source}: column(s) {', '.join(duplicated)} appear more than once; keep one of each")
    for column in REQUIRED_COLUMNS:
        blank = is_missing(samples[column])
        if blank.any():
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(blank)[:5])
            raise DatasetError(
                f"{source}: column '{column}' has no value in {int(blank.sum())} row(s) (rows {rows}; {MISSING_TEXT})"
            )
        samples[column] = samples[column].astype(str).str.strip()
    samples["emotion"] = samples["emotion"].str.lower()

    duplicated = samples["sample_id"].duplicated(keep=False)
    if duplicated.any():
        ids = ", ".join(sorted(samples.loc[duplicated, "sample_id"].unique())[:5])
        raise DatasetError(f"{source}: duplicate sample_id values ({ids}); every sample needs a unique id")

    present = set(samples["emotion"].unique())  # unique() first: set() of a column iterates it in Python
    unknown = sorted(present - set(EMOTIONS))
    if unknown:
        raise DatasetError(
            f"{source}: emotion label(s) {', '.join(map(repr, unknown))} are not in the vocabulary "
            f"({', '.join(EMOTIONS)}); map them to canonical names first"
        )

    attributes = attribute_columns(samples.columns) if attributes is None else attributes
    absent = [a for a in attributes if a not in samples.columns]
    if absent:
        raise DatasetError(
            f"{source}: attribute column(s) {', '.join(absent)} not found "
            f"(columns: {', '.join(map(str, samples.columns))})"
        )
    for attribute in attributes:
        blank = is_missing(samples[attribute])
        if blank.any():
            first = int(np.flatnonzero(blank)[0])
            raise DatasetError(
                f"{source}: attribute '{attribute}' has no value for {int(blank.sum())} sample(s) "
                f"(first: row {first + 1}, sample {samples.at[first, 'sample_id']}; {MISSING_TEXT}); "
                "fill them in, or pass ?on_error=exclude to leave those samples out and list them in the report"
            )
        samples[attribute] = samples[attribute].astype(str).str.strip()
        _check_spellings(samples[attribute], attribute=attribute, source=source)

    declared = tuple(e for e in EMOTIONS if e in present) if emotions is None else tuple(emotions)
    return samples.reset_index(drop=True), attributes, declared


def _spelling(value: str) -> str:
    return " ".join(value.casefold().split())


def _check_spellings(values: pd.Series, *, attribute: str, source: str) -> None:
    """'Female' and 'female' would be compared as two groups: stop and name them."""
    counts = values.value_counts(sort=False)
    by_spelling: dict[str, list[str]] = {}
    for value in sorted(counts.index):
        by_spelling.setdefault(_spelling(value), []).append(value)
    clashes = [group for group in by_spelling.values() if len(group) > 1]
    if not clashes:
        return
    shown = "; ".join(" and ".join(f"'{v}' ({counts[v]})" for v in group) for group in clashes[:3])
    more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
    first = clashes[0]
    example = ",".join(f"{quote_name(v)}={quote_name(first[-1])}" for v in first[:-1])
    raise DatasetError(
        f"{source}: attribute '{attribute}' has values that differ only in case or spacing, which would be "
        f"compared as separate groups: {shown}{more}; map them to one value, e.g. "
        f"?map={quote_name(attribute)}:{example}, or fix the file"
    )


def abbreviation_notes(samples: pd.DataFrame, attributes: Iterable[str]) -> list[str]:
    """A one-letter value beside a word it could abbreviate ('F' and 'female') is probably one group
    written two ways, but could be two (blood groups A and AB): say so rather than stop."""
    notes = []
    for attribute in attributes:
        counts = samples[attribute].value_counts()
        pairs = [
            (code, word)
            for code in sorted(counts.index)
            if len(code) == 1 and code.isalpha()
            for word in sorted(counts.index)
            if len(word) > 1 and word.casefold().startswith(code.casefold())
        ]
        if pairs:
            shown = "; ".join(f"'{c}' ({counts[c]}) and '{w}' ({counts[w]})" for c, w in pairs[:3])
            example = ",".join(f"{quote_name(c)}={quote_name(w)}" for c, w in pairs[:2])
            notes.append(
                f"attribute '{attribute}' has a one-letter value beside a word it may abbreviate, compared as "
                f"separate groups: {shown}; if they are one group, map them with "
                f"?map={quote_name(attribute)}:{example}"
            )
    return notes


def quote_name(text: str) -> str:
    """A name as it must be written inside ``?map=`` (the characters that split the option %-escaped)."""
    return quote(text, safe=" +-_.~()'/")


def check_dataset(dataset: object, spec: object) -> Dataset:
    """A dataset from outside the package (a conftest hook, an installed package), checked like ours.

    Its sample table goes through the same checks as a manifest's, so ragged data is caught the same way.
    """
    text = getattr(spec, "text", str(spec))
    if not isinstance(dataset, Dataset):
        raise DatasetError(
            f"dataset '{text}' gave {type(dataset).__name__}, not a fer_fairness.Dataset "
            "(fer_fairness.manifest(PATH) builds one from a CSV)"
        )
    samples, attributes, emotions = validate_samples(
        dataset.samples, source=f"dataset '{text}'", attributes=dataset.attributes
    )
    return replace(dataset, samples=samples, attributes=attributes, emotions=emotions, root=Path(dataset.root))
