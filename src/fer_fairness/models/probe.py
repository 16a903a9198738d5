"""A linear probe over any image embedder, evaluated out of fold.

Every sample's prediction comes from a model that never saw its subject: the outer cross-validation
splits by ``subject_id`` and stratifies by emotion x every demographic attribute, and the
regularisation strength is chosen by an inner cross-validation on the training subjects only.
The probe knows nothing about the embedder beyond the ``Embedder`` protocol.

Embeddings are cached per (image bytes, embedder name, embedder settings); out-of-fold predictions
per (embeddings, probe settings, labels and groups, seed). Both are written atomically under a file
lock, so concurrent pytest-xdist workers compute each entry once. Image digests are remembered by
file stat (``_digests``) and an embedder that can decode bytes gets the ones read to hash them, so a
cold run reads each image once and a warm run reads none.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fer_fairness._cache import atomic_path, digest_of, file_lock, stable_key
from fer_fairness._digests import read_digests, store_for
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext
from fer_fairness.progress import bar as progress_bar
from fer_fairness.specs import Spec, check_options

# Bump when the probe's procedure changes: it is part of every prediction cache key.
PROBE_VERSION = 1
FOLD_COLUMN = "fold"
C_COLUMN = "c"
HOG_C_GRID = (0.0003, 0.001, 0.003)
# Image bytes read to hash on a cold run are kept (up to this much) to decode from, so each image is
# read once; beyond it the rest are read again from disk, bounding memory on large datasets.
HELD_BYTES = 256 * 1024 * 1024


class Embedder(Protocol):
    """Images -> one float vector each. ``name`` and ``settings()`` identify the embedding in caches.

    An embedder that can run on an engine's actors (``--fairness-engine ray``) also has ``spec_text``,
    ``batch_size`` and ``_call(paths)`` (engines.RayEngine); one without them embeds on the driver.
    An embedder whose ``embed`` also takes ``held`` (position -> the file's bytes, already read to
    hash it) decodes those from memory, so a cold run reads each image once.
    """

    name: str

    def settings(self) -> Mapping[str, str | int | float]: ...

    def embed(self, paths: Sequence[Path], *, progress: bool) -> np.ndarray: ...


@dataclass(frozen=True)
class ProbeResult:
    """Out-of-fold outcomes (the outcome columns plus ``fold`` and the ``c`` chosen in that fold)."""

    outcomes: pd.DataFrame

    @property
    def chosen_c(self) -> dict[int, float]:
        """The regularisation strength chosen in each outer fold."""
        pairs = self.outcomes[[FOLD_COLUMN, C_COLUMN]].drop_duplicates()
        return {int(fold): float(c) for fold, c in pairs.itertuples(index=False)}


def strata_labels(samples: pd.DataFrame, attributes: Sequence[str]) -> np.ndarray:
    """One stratum per emotion x value of every attribute, e.g. ``anger|gender=female|race=Black``."""
    labels = samples["emotion"].astype(str)
    for attribute in sorted(attributes):
        labels = labels + f"|{attribute}=" + samples[attribute].astype(str)
    return labels.to_numpy()


def outer_folds(samples: pd.DataFrame, attributes: Sequence[str], *, n_splits: int, seed: int) -> np.ndarray:
    """The outer fold (0..n_splits-1) of every row: grouped by subject, stratified by emotion x group."""
    groups = samples["subject_id"].astype(str).to_numpy()
    _check_enough_subjects(groups, n_splits, where="outer")
    folds = np.full(len(samples), -1, dtype=np.int64)
    for fold, (_, test) in enumerate(_split(strata_labels(samples, attributes), groups, n_splits=n_splits, seed=seed)):
        folds[test] = fold
    return folds


def inner_splits(
    strata: np.ndarray, groups: np.ndarray, *, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/validation index pairs over the given (training) rows only, grouped by subject."""
    _check_enough_subjects(groups, n_splits, where="inner")
    return list(_split(strata, groups, n_splits=n_splits, seed=seed))


def _split(strata: np.ndarray, groups: np.ndarray, *, n_splits: int, seed: int):
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Fine strata (emotion x every attribute) are often smaller than n_splits in small sets;
        # the split stays grouped and as balanced as the data allows.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        try:
            yield from splitter.split(np.zeros(len(strata)), strata, groups)
        except ValueError as error:  # scikit-learn's word for "too few subjects to split this way"
            raise ModelError(
                f"linear probe: cannot split {len(set(groups))} subjects into {n_splits} folds by subject "
                f"({error}); use a dataset with more subjects per group"
            ) from None


def _check_enough_subjects(groups: np.ndarray, n_splits: int, *, where: str) -> None:
    subjects = len(set(groups))
    if subjects < n_splits:
        raise ModelError(
            f"linear probe: the {where} cross-validation needs at least {n_splits} subjects to split by "
            f"subject; found {subjects}"
        )


def _fold_seed(seed: int, fold: int) -> int:
    return int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])


class LinearProbe:
    """A model under test: standardised embeddings -> multinomial logistic regression, out of fold."""

    # It is fitted (cross-validated) on each dataset it is given: given perturbed images it would be
    # a new probe trained on them, not this one meeting worse photos (robustness_gap says so).
    learns_from_dataset = True

    def __init__(
        self,
        embedder: Embedder,
        *,
        name: str | None = None,
        c_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
        outer_folds: int = 5,
        inner_folds: int = 3,
        max_iter: int = 300,
        tol: float = 1e-3,
    ) -> None:
        c_grid = tuple(float(c) for c in c_grid)
        if not c_grid or any(not np.isfinite(c) or c <= 0 for c in c_grid):
            raise ModelError(f"linear probe: c_grid must hold one or more positive numbers; got {c_grid!r}")
        for label, value in (("outer_folds", outer_folds), ("inner_folds", inner_folds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ModelError(f"linear probe: {label} must be an integer >= 2; got {value!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1 or not tol > 0:
            raise ModelError(f"linear probe: max_iter must be an integer >= 1 and tol > 0; got {max_iter!r}, {tol!r}")
        self.embedder = embedder
        self.name = name or f"{embedder.name}-probe"
        self.c_grid = tuple(sorted(set(c_grid)))
        self.outer_folds = outer_folds
        self.inner_folds = inner_folds
        self.max_iter = max_iter
        self.tol = tol

    def settings(self) -> dict[str, object]:
        return {
            "c_grid": list(self.c_grid),
            "outer_folds": self.outer_folds,
            "inner_folds": self.inner_folds,
            "max_iter": self.max_iter,
            "tol": self.tol,
        }

    def describe(self) -> dict[str, str]:
        return {
            "kind": "linear-probe",
            "embedder": self.embedder.name,
            "embedder_settings": _render(dict(self.embedder.settings())),
            "probe": _render(self.settings()),
            "evaluation": "out-of-fold; outer StratifiedGroupKFold by subject; C chosen by inner grouped CV",
            "scikit-learn": sklearn.__version__,
        }

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame:
        """The outcome table: each sample predicted once, by the fold model that never saw its subject."""
        return self.cross_validate(dataset, context=context).outcomes[list(OUTCOME_COLUMNS)].copy()

    def cross_validate(self, dataset: Dataset, *, context: PredictContext) -> ProbeResult:
        """Out-of-fold outcomes with the fold of each sample and the C chosen there (cached)."""
        features, embedding_key = self._embeddings(dataset, context=context)
        samples = dataset.samples
        labels = samples[["sample_id", "emotion", "subject_id", *sorted(dataset.attributes)]].astype(str)
        key = stable_key(
            PROBE_VERSION,
            sklearn.__version__,
            embedding_key,
            self.settings(),
            context.seed,
            sorted(dataset.attributes),
            digest_of("\x1f".join(row) for row in labels.itertuples(index=False)),
        )
        path = Path(context.cache_dir) / "probe" / f"{_safe(self.name)}-{key}.parquet"
        if not path.is_file():
            with file_lock(path.with_suffix(".lock")):
                if not path.is_file():
                    outcomes = self._cross_validate(features, dataset, seed=context.seed, progress=context.progress)
                    with atomic_path(path) as temporary:
                        outcomes.to_parquet(temporary, index=False)
        outcomes = pd.read_parquet(path)
        if list(outcomes["sample_id"]) != list(samples["sample_id"]):
            raise ModelError(f"linear probe: cached predictions {path} do not match the dataset; delete the file")
        return ProbeResult(outcomes)

    def embeddings(self, dataset: Dataset, *, context: PredictContext) -> np.ndarray:
        """The embedder's features for every sample, in table order (cached)."""
        return self._embeddings(dataset, context=context)[0]

    def _embeddings(self, dataset: Dataset, *, context: PredictContext) -> tuple[np.ndarray, str]:
        return cached_embeddings(self.embedder, dataset, context=context, what="linear probe")

    def _cross_validate(self, features: np.ndarray, dataset: Dataset, *, seed: int, progress: bool) -> pd.DataFrame:
        samples = dataset.samples
        features = features.astype(np.float64)
        emotions = samples["emotion"].astype(str).to_numpy()
        groups = samples["subject_id"].astype(str).to_numpy()
        strata = strata_labels(samples, dataset.attributes)
        folds = outer_folds(samples, dataset.attributes, n_splits=self.outer_folds, seed=seed)
        outcome = np.empty(len(samples), dtype=object)
        raw = np.empty(len(samples), dtype=object)
        chosen = np.empty(len(samples), dtype=np.float64)
        bar = progress_bar(self.outer_folds, f"{self.name} folds", progress, unit="fold")
        # One BLAS thread per fit: these problems are small, and threads only contend for the cores.
        with threadpool_limits(limits=1, user_api="blas"), bar:
            for fold in range(self.outer_folds):
                test = folds == fold
                train = ~test
                model, c = self._fit(
                    features[train], emotions[train], strata[train], groups[train], seed=_fold_seed(seed, fold)
                )
                probabilities = model.predict_proba(features[test])
                best = probabilities.argmax(axis=1)
                outcome[test] = model.classes_[best]
                raw[test] = [f"{p:.4f}" for p in probabilities[np.arange(len(best)), best]]
                chosen[test] = c
                bar.update()
        return pd.DataFrame(
            {
                "sample_id": samples["sample_id"].astype(str).to_numpy(),
                "outcome": outcome.astype(str),
                "raw": raw.astype(str),
                FOLD_COLUMN: folds,
                C_COLUMN: chosen,
            }
        )

    def _fit(self, features: np.ndarray, emotions: np.ndarray, strata: np.ndarray, groups: np.ndarray, *, seed: int):
        """Fit on one outer fold's training rows; C is chosen by grouped CV within those rows only."""
        pipeline = Pipeline(
            [
                ("scale", StandardScaler()),
                ("classify", LogisticRegression(C=self.c_grid[0], max_iter=self.max_iter, tol=self.tol)),
            ]
        )
        if len(self.c_grid) == 1:
            return pipeline.fit(features, emotions), self.c_grid[0]
        search = GridSearchCV(
            pipeline,
            {"classify__C": list(self.c_grid)},
            cv=inner_splits(strata, groups, n_splits=self.inner_folds, seed=seed),
            scoring="accuracy",
            refit=True,
            error_score="raise",
        )
        search.fit(features, emotions)
        return search.best_estimator_, float(search.best_params_["classify__C"])


def embedding_cache(cache_dir: str | Path, embedder: Embedder, digests: Iterable[str]) -> tuple[str, Path]:
    """The embedding cache's (key, file) for ``embedder`` on images with these SHA-256s, in table order.

    Every adapter goes through this one definition, so models sharing an embedder (clip-probe and
    clip-zeroshot) share entries. Unchanged since caches were first written: old entries stay valid.
    """
    key = stable_key(embedder.name, dict(embedder.settings()), digest_of(digests))
    return key, Path(cache_dir) / "embeddings" / f"{_safe(embedder.name)}-{key}.npy"


def cached_embeddings(
    embedder: Embedder, dataset: Dataset, *, context: PredictContext, what: str
) -> tuple[np.ndarray, str]:
    """(float32 embeddings in table order, their cache key); ``what`` starts every error message.

    A warm run stats each image and loads one file. A cold one reads each image once: to hash it,
    and, where the embedder takes ``held``, to decode it from those same bytes.
    """
    root = str(dataset.root)
    # Plain strings: on a warm run these joins and one stat each are most of the time left.
    names = [os.path.join(root, p) for p in dataset.samples["path"]]
    local = not _on_engine(embedder, context)  # an engine's actors read the files themselves
    takes_bytes = local and "held" in inspect.signature(embedder.embed).parameters
    try:
        digests, held = read_digests(
            names, store_for(context.cache_dir, root), hold_bytes=HELD_BYTES if takes_bytes else 0
        )
    except OSError as error:
        raise ModelError(f"{what}: cannot read image {error.filename}: {error.strerror}") from error
    key, path = embedding_cache(context.cache_dir, embedder, digests)
    if not path.is_file():
        with file_lock(path.with_suffix(".lock")):
            if not path.is_file():
                paths = [Path(name) for name in names]
                features = _embed_in_parts(embedder, paths, held, path, context=context, what=what)
                with atomic_path(path) as temporary:
                    np.save(temporary, features)
                _drop_parts(path)
                return features, key
    return np.load(path), key


# Images per partial file while a set is embedded: a run killed half-way (on a laptop or a cluster)
# resumes with the parts it lacks, re-embedding at most one part's worth of finished work.
PART = 4096


def _embed_in_parts(
    embedder: Embedder, paths: list[Path], held: dict[int, bytes], path: Path, *, context: PredictContext, what: str
) -> np.ndarray:
    """Embeddings of ``paths`` in table order, written part by part beside ``path`` as each completes
    (a part's content is fixed by the whole set's key and its index); parts already on disk are read."""
    batch = max(1, int(getattr(embedder, "batch_size", 1) or 1))
    size = max(batch, PART // batch * batch)  # whole batches: each image meets the same batch as unparted
    parts = [range(start, min(start + size, len(paths))) for start in range(0, len(paths), size)]
    folder = _parts_folder(path)
    done = {i: np.load(folder / f"{i:06d}.npy") for i in range(len(parts)) if (folder / f"{i:06d}.npy").is_file()}
    missing = [i for i in range(len(parts)) if i not in done]
    wanted = [position for i in missing for position in parts[i]]

    def save(i: int, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or len(rows) != len(parts[i]) or not np.isfinite(rows).all():
            raise ModelError(
                f"{what}: embedder '{embedder.name}' returned an array of shape {rows.shape} "
                f"(finite: {bool(np.isfinite(rows).all())}); expected ({len(parts[i])}, d), all finite"
            )
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{i:06d}.npy") as temporary:
            np.save(temporary, rows)
        done[i] = rows

    bar = progress_bar(len(wanted), f"{embedder.name} images", context.progress)
    with bar:
        if not _on_engine(embedder, context):
            for i in missing:
                chunk = [paths[p] for p in parts[i]]
                mine = {p - parts[i].start: held[p] for p in parts[i] if p in held}
                rows = (
                    embedder.embed(chunk, progress=False, held=mine) if mine else embedder.embed(chunk, progress=False)
                )
                save(i, rows)
                bar.update(len(chunk))
        elif wanted:
            part_of = {position: i for i in missing for position in parts[i]}
            answered: dict[int, list[float]] = {}
            left = {i: len(parts[i]) for i in missing}
            batches = context.engine.batches(embedder, [paths[p] for p in wanted], batch_size=batch, progress=bar)
            for positions, answers in batches:
                for position, row in zip(positions, answers, strict=True):
                    original = wanted[position]
                    answered[original] = row
                    i = part_of[original]
                    left[i] -= 1
                    if left[i] == 0:  # a part is complete: written at once, so a kill keeps it
                        save(i, [answered.pop(p) for p in parts[i]])
                bar.update(len(positions))
    return np.concatenate([done[i] for i in range(len(parts))]) if parts else np.zeros((0, 0), np.float32)


def _parts_folder(path: Path) -> Path:
    return path.with_name(path.stem + ".parts")


def _drop_parts(path: Path) -> None:
    """The whole file is written: its parts are no longer needed."""
    folder = _parts_folder(path)
    for part in folder.glob("*.npy"):
        part.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # absent, or another process is writing into it: harmless either way
        pass


def _on_engine(embedder: Embedder, context: PredictContext) -> bool:
    return context.engine is not None and getattr(embedder, "spec_text", None) is not None


def hog_probe(spec: Spec) -> LinearProbe:
    """Registry entry for ``hog-probe``: the linear probe on HOG features, the offline default model."""
    check_options(spec, (), what="model")
    if spec.target:
        raise ConfigError(f"model '{spec.text}': hog-probe takes no target; write just 'hog-probe'")
    from fer_fairness.models.hog import HogEmbedder  # the probe itself stays embedder-agnostic

    # HOG features are many and weak: strong regularisation wins (the inner CV picks within this).
    return LinearProbe(HogEmbedder(), c_grid=HOG_C_GRID)


def _safe(name: str) -> str:
    """A model or embedder name as a file-name fragment (names may hold ':' '/' '@')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _render(values: Mapping[str, object]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(values.items()))
