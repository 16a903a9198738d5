"""The records of ``criteria.evaluate.evaluate``, kept under the run's cache directory for warm re-runs.

An entry is keyed by a SHA-256 over everything the records depend on: the tables' content (walked by
``_Key``: count tensors, per-face rows, scores, baseline, perturbed and counterfactual pairs; memo
fields, declared ``compare=False``, left out), every field of the Thresholds (not only the file's
digest: command-line options change it too), the seed, the numeric libraries' versions and a digest
of this package's own source, so editing any module of it invalidates every entry.

Only built-in criteria are cached. A user's own criterion (a conftest hook or an entry point) has code
outside that source digest, so a run enabling one evaluates afresh and stores nothing. A table holding
anything the key cannot describe exactly disables the cache for that run: a miss, never a wrong hit.

``evaluate`` neither warns nor says anything (no ``warnings.warn``, no ``state.say``; its numeric
warnings are silenced with ``np.errstate`` where they are expected), so a cached run loses no output
and nothing is replayed. Should it ever emit warnings, a cached entry would drop them: this module
records none, so such a change must either replay them or stop caching here.

Records are stored pickled, not through ``Record.to_dict``: that JSON form turns NaN into null and
numpy floats into Python floats, so its round trip is not exact.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import pickle
import struct
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_fairness._cache import atomic_path, file_lock
from fer_fairness.config import Thresholds
from fer_fairness.criteria.catalogue import BUILTIN
from fer_fairness.criteria.evaluate import Table, evaluate
from fer_fairness.criteria.records import Record

# Bump when the entry layout or the key's walk changes: older entries then simply miss.
CACHE_VERSION = 1
KEEP = 32  # entries kept (newest by mtime): one per policy x seed x data a user alternates between
_LIBRARIES = ("numpy", "scipy", "statsmodels", "pandas")  # whose numbers the records are made of


class _Unkeyable(Exception):
    """A value the key cannot describe exactly: that run is not cached."""


def evaluate_cached(
    tables: list[Table],
    *,
    thresholds: Thresholds,
    seed: int,
    cache_dir: Path | None,
    compute: Callable[..., list[Record]] = evaluate,
) -> list[Record]:
    """``compute(tables, thresholds=, seed=)``, read from ``cache_dir`` when an entry for exactly these
    inputs is there; ``cache_dir`` None or a user's own criterion: computed, nothing stored."""
    key = None if cache_dir is None else cache_key(tables, thresholds=thresholds, seed=seed)
    if key is None:
        return compute(tables, thresholds=thresholds, seed=seed)
    folder = Path(cache_dir) / "evaluations"
    entry = folder / f"{key}.pickle"
    with file_lock(folder / f".{key}.lock"):  # xdist workers or parallel runs: one computes, the others read
        records = _read(entry)
        if records is None:
            records = compute(tables, thresholds=thresholds, seed=seed)
            try:
                with atomic_path(entry) as temporary:
                    temporary.write_bytes(pickle.dumps((CACHE_VERSION, key, records), protocol=5))
            except OSError:
                return records  # a full or read-only cache costs the next run a recomputation, no more
        _prune(folder)
    return records


def cache_key(tables: list[Table], *, thresholds: Thresholds, seed: int) -> str | None:
    """The entry's SHA-256 (hex), or None when this run must not be cached."""
    builtin = {c.name: c for c in BUILTIN}
    if any(builtin.get(c.name) is not c for c in thresholds.enabled()):
        return None  # a user's criterion: its code is not in the package digest
    key = _Key()
    try:
        key.add(("fer-fairness evaluation", CACHE_VERSION, package_digest(), _versions(), int(seed)))
        policy = {
            f.name: getattr(thresholds, f.name) for f in dataclasses.fields(thresholds) if f.name != "definitions"
        }
        key.add(policy)
        # The definitions are built-in (checked above): their names, in order, stand for their code.
        key.add(tuple((name, c.source) for name, c in thresholds.definitions.items()))
        key.add(list(tables))
    except _Unkeyable:
        return None
    return key.hexdigest()


@cache
def package_digest() -> str:
    """SHA-256 over every .py file of the fer_fairness package (path and bytes), once per process."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


@cache
def _versions() -> tuple[tuple[str, str], ...]:
    found = []
    for package in _LIBRARIES:
        try:
            found.append((package, version(package)))
        except PackageNotFoundError:
            found.append((package, ""))
    return tuple(found)


def _read(entry: Path) -> list[Record] | None:
    """The stored records, or None for a missing, corrupt or foreign entry (recomputed, never an error)."""
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    try:
        stored = pickle.loads(data)  # noqa: S301 - written by this package into the user's own cache folder
    except Exception:  # a truncated or garbled file fails in many ways; each is only a miss
        return None
    if not (isinstance(stored, tuple) and len(stored) == 3 and stored[0] == CACHE_VERSION and stored[1] == entry.stem):
        return None
    records = stored[2]
    if not (isinstance(records, list) and all(isinstance(r, Record) for r in records)):
        return None
    return records


def _prune(folder: Path) -> None:
    """Keep the newest KEEP entries; a file another process removed first is not an error."""
    try:
        entries = [(p.stat().st_mtime_ns, p) for p in folder.glob("*.pickle")]
    except OSError:
        return
    entries.sort(reverse=True)
    for _, path in entries[KEEP:]:
        path.unlink(missing_ok=True)
        path.with_name(f".{path.stem}.lock").unlink(missing_ok=True)


class _Key:
    """A SHA-256 fed a typed, length-prefixed walk of a value: equal content gives equal bytes in every
    process (no set order, no object identity, no pickle memo), and anything not listed is _Unkeyable."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def _put(self, tag: bytes, data: bytes = b"") -> None:
        self._digest.update(tag + len(data).to_bytes(8, "big") + data)

    def add(self, value: Any) -> None:  # noqa: C901, PLR0912 - one branch per kind of value, on purpose
        if value is None:
            self._put(b"N")
        elif isinstance(value, bool | np.bool_):
            self._put(b"B", b"1" if value else b"0")
        elif isinstance(value, enum.Enum):
            self._put(b"E", _qualname(value).encode())
            self.add(value.value)
        elif isinstance(value, int | np.integer):
            self._put(b"I", str(int(value)).encode())
        elif isinstance(value, float | np.floating):
            self._put(b"F", struct.pack("<d", float(value)))  # exact: -0.0, inf and NaN each their own bytes
        elif isinstance(value, str):
            self._put(b"S", value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, bytes):
            self._put(b"Y", value)
        elif isinstance(value, tuple | list):
            self._put(b"T" if isinstance(value, tuple) else b"L", str(len(value)).encode())
            for item in value:
                self.add(item)
        elif isinstance(value, set | frozenset):
            self._put(b"Z", str(len(value)).encode())
            parts = []
            for item in value:  # iteration order varies with the hash seed: sort the members' digests
                inner = _Key()
                inner.add(item)
                parts.append(inner.hexdigest())
            for part in sorted(parts):
                self._put(b"z", part.encode())
        elif isinstance(value, np.ndarray):
            self._array(value)
        elif isinstance(value, pd.DataFrame):
            self._put(b"D", _qualname(value).encode())
            self.add([str(c) if not isinstance(c, str) else c for c in value.columns])
            self._index(value.index)
            for column in value.columns:
                self._series(value[column])
        elif isinstance(value, pd.Series):
            self._put(b"R", str(value.name).encode())
            self._index(value.index)
            self._series(value)
        elif isinstance(value, Mapping):
            self._mapping(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            self._put(b"C", _qualname(value).encode())
            for f in dataclasses.fields(value):
                if f.compare:  # compare=False marks memo caches (CountTensor.memo, ClusterCounts._memo)
                    self._put(b"f", f.name.encode())
                    self.add(getattr(value, f.name))
        else:
            raise _Unkeyable(type(value).__name__)

    def _mapping(self, value: Any) -> None:
        # Insertion order is kept in the key: records list groups and rates in that order.
        self._put(b"M", str(len(value)).encode())
        for k, v in value.items():
            self.add(k)
            self.add(v)

    def _array(self, value: np.ndarray) -> None:
        self._put(b"A", f"{value.dtype.str}{value.shape}".encode())
        if value.dtype.hasobject:
            for item in value.ravel():
                self.add(item)
        elif value.dtype.fields is not None:
            raise _Unkeyable("structured array")
        else:
            self._put(b"a", np.ascontiguousarray(value).tobytes())

    def _index(self, index: pd.Index) -> None:
        if isinstance(index, pd.RangeIndex):
            self._put(b"r", f"{index.start},{index.stop},{index.step}".encode())
        else:
            self._series(index.to_series())

    def _series(self, series: pd.Series) -> None:
        values = series.array
        self._put(b"s", str(series.dtype).encode())
        if isinstance(series.dtype, pd.CategoricalDtype):
            self.add(bool(series.cat.ordered))
            self._array(np.asarray(series.cat.categories, dtype=object))
            self._array(np.asarray(series.cat.codes))
        elif isinstance(values, pd.arrays.NumpyExtensionArray) or series.dtype.kind in "biufcmM":
            self._array(series.to_numpy())
        else:
            self._array(np.asarray(series.to_numpy(dtype=object)))


def _qualname(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"
