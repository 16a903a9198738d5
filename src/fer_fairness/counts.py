"""The count tensor: counts[group, true emotion, outcome] for one model x dataset x grouping.

Every criterion is computed from these counts, never from rows, so the statistics (and the
bootstrap) cost the same for ten thousand images as for a hundred.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fer_fairness.errors import ModelError
from fer_fairness.labels import EMOTIONS, MODEL_NON_ANSWERS, NON_ANSWERS, NOT_EVALUATED

GROUP_JOIN = "+"  # "skin_tone+gender" = "dark+female"


@dataclass(frozen=True, kw_only=True)
class ClusterCounts:
    """Per-subject counts within one grouping, kept sparse: entry i says that subject
    ``entry_subject[i]`` has ``entry_count[i]`` images in (true, outcome) cell ``entry_cell[i]``
    (cell = true * O + outcome); ``group[s]`` is subject s's group index. Subjects are ordered by
    group, so one group's entries are one contiguous run.

    Images of one person are not independent; clustered inference (design effects) needs each
    person's counts. A person seen in two groups is one cluster per group. Sparse because a person
    has a handful of images: a dense (subjects, T, O) array is mostly zeros and, at a million
    images, gigabytes.
    """

    group: np.ndarray  # int64, shape (S,), index into CountTensor.groups, non-decreasing
    entry_subject: np.ndarray  # int64, shape (M,), non-decreasing
    entry_cell: np.ndarray  # int64, shape (M,)
    entry_count: np.ndarray  # int64, shape (M,)
    shape: tuple[int, int]  # (T, O)
    _bounds: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dense(cls, *, group: np.ndarray, counts: np.ndarray) -> ClusterCounts:
        """From per-subject (S, T, O) counts (tests and small hand-built tensors)."""
        order = np.argsort(group, kind="stable")
        group, counts = np.asarray(group, dtype=np.int64)[order], np.asarray(counts, dtype=np.int64)[order]
        flat = counts.reshape(len(group), -1)
        subject, cell = np.nonzero(flat)
        return cls(
            group=group,
            entry_subject=subject.astype(np.int64),
            entry_cell=cell.astype(np.int64),
            entry_count=flat[subject, cell],
            shape=tuple(counts.shape[1:]),
        )

    @property
    def counts(self) -> np.ndarray:
        """The dense (S, T, O) counts: for tests and small tensors, never on a hot path."""
        dense = np.zeros((len(self.group), self.shape[0] * self.shape[1]), dtype=np.int64)
        np.add.at(dense, (self.entry_subject, self.entry_cell), self.entry_count)
        return dense.reshape(len(self.group), *self.shape)

    def per_subject(self, g: int, select, tensor: CountTensor, detail) -> tuple[np.ndarray, np.ndarray]:
        """(events, images) of each of group g's subjects under ``select``.

        A selector is a sum over (true, outcome) cells, so it is applied once to the one-hot basis of
        the cells to read each cell's weight, and each subject's value is a weighted bincount of its
        entries; the caller checks the subjects add up to the group (``select`` on the group's counts).
        """
        first, last, lo, hi = self._range(g)
        width = self.shape[0] * self.shape[1]
        basis = np.eye(width, dtype=np.int64).reshape(width, *self.shape)
        weights = [np.broadcast_to(np.asarray(w), (width,)) for w in select(basis, tensor, detail)]
        local = self.entry_subject[lo:hi] - first
        cell, count = self.entry_cell[lo:hi], self.entry_count[lo:hi]
        return tuple(np.bincount(local, weights=count * w[cell], minlength=last - first) for w in weights)

    def _range(self, g: int) -> tuple[int, int, int, int]:
        if g not in self._bounds:
            first, last = np.searchsorted(self.group, [g, g + 1])
            lo, hi = np.searchsorted(self.entry_subject, [first, last])
            self._bounds[g] = (int(first), int(last), int(lo), int(hi))
        return self._bounds[g]


@dataclass(frozen=True, kw_only=True)
class CountTensor:
    """Counts of (group, true emotion, outcome); outcomes are labels first, then non-answers."""

    attribute: str
    groups: tuple[str, ...]
    labels: tuple[str, ...]
    outcomes: tuple[str, ...]
    counts: np.ndarray  # int64, shape (len(groups), len(labels), len(outcomes))
    clusters: ClusterCounts | None = None  # None: no person has two images in one group
    # Values derived from these counts, computed once (a group's share is read by every pair it is in).
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def group_sizes(self) -> dict[str, int]:
        return dict(zip(self.groups, self.counts.sum(axis=(1, 2)).tolist(), strict=True))

    def correct_mask(self) -> np.ndarray:
        """Boolean (T, O): where the outcome equals the true label."""
        return np.array([[o == t for o in self.outcomes] for t in self.labels])

    def evaluated_mask(self) -> np.ndarray:
        """Boolean (O,): outcomes of evaluated samples (all but NOT_EVALUATED: no answer arrived)."""
        return np.array([o != NOT_EVALUATED for o in self.outcomes])

    def model_non_answer_mask(self) -> np.ndarray:
        """Boolean (O,): the model's own non-answers (refused, unparseable)."""
        return np.array([o in MODEL_NON_ANSWERS for o in self.outcomes])


def join_outcomes(samples: pd.DataFrame, outcomes: pd.DataFrame, *, model: str, dataset: str) -> pd.DataFrame:
    """Attach each sample's outcome; every sample must have exactly one, and nothing else may appear."""
    duplicated = outcomes["sample_id"].duplicated(keep=False)
    if duplicated.any():
        ids = ", ".join(sorted(outcomes.loc[duplicated, "sample_id"].astype(str).unique())[:5])
        raise ModelError(f"model '{model}' gave more than one prediction for sample(s) {ids} of dataset '{dataset}'")
    known = set(samples["sample_id"].unique())  # unique() first: set() of a column iterates it in Python
    given = set(outcomes["sample_id"].unique())
    missing = sorted(known - given)
    if missing:
        raise ModelError(
            f"model '{model}' has no prediction for {len(missing)} of {len(known)} samples of dataset "
            f"'{dataset}' (e.g. {', '.join(missing[:3])}); every sample must be evaluated, "
            f"mark a failure to answer as refused, unparseable or error"
        )
    extra = sorted(given - known)
    if extra:
        raise ModelError(
            f"model '{model}' has predictions for {len(extra)} sample id(s) that dataset '{dataset}' lacks "
            f"(e.g. {', '.join(map(str, extra[:3]))}); are the predictions for another dataset?"
        )
    return samples.merge(outcomes[["sample_id", "outcome"]], on="sample_id", how="left", validate="one_to_one")


def group_names(frame: pd.DataFrame, attributes: tuple[str, ...]) -> pd.Series:
    """Each row's group in a grouping: its attribute values joined by GROUP_JOIN ("dark+female")."""
    group = frame[attributes[0]].astype(str)
    for attribute in attributes[1:]:
        group = group + GROUP_JOIN + frame[attribute].astype(str)
    return group


def build_counts(joined: pd.DataFrame, *, attributes: tuple[str, ...], labels: tuple[str, ...]) -> CountTensor:
    """Count tensor for one attribute, or an intersection when several attributes are given.

    Per-subject counts (``clusters``) come from the ``subject_id`` column where one person has
    several images in a group; images without a subject id each count as their own person.
    """
    group = group_names(joined, attributes)
    predicted = set(joined["outcome"].unique()) - set(NON_ANSWERS)
    outcome_axis = tuple(e for e in EMOTIONS if e in set(labels) | predicted) + NON_ANSWERS
    groups = tuple(sorted(group.unique()))
    g = pd.Categorical(group, categories=groups).codes.astype(np.int64)
    t = pd.Categorical(joined["emotion"], categories=labels).codes.astype(np.int64)
    o = pd.Categorical(joined["outcome"], categories=outcome_axis).codes.astype(np.int64)
    if (t < 0).any() or (o < 0).any():
        # Loaders validate labels and outcomes, so this is a bug, never a user's mistake: refuse to
        # evaluate on counts that silently lost rows.
        raise ValueError(
            f"count tensor would drop {int(((t < 0) | (o < 0)).sum())} of {len(joined)} rows; labels {labels}"
        )
    cell = t * len(outcome_axis) + o  # one integer per (true, outcome), so counting is one bincount
    width = len(labels) * len(outcome_axis)
    counts = np.bincount(g * width + cell, minlength=len(groups) * width)
    return CountTensor(
        attribute=GROUP_JOIN.join(attributes),
        groups=groups,
        labels=labels,
        outcomes=outcome_axis,
        counts=counts.astype(np.int64).reshape(len(groups), len(labels), len(outcome_axis)),
        clusters=_clusters(joined, g, cell, shape=(len(labels), len(outcome_axis))),
    )


def _clusters(
    joined: pd.DataFrame, group: np.ndarray, cell: np.ndarray, *, shape: tuple[int, int]
) -> ClusterCounts | None:
    """Per-(group, subject) counts, or None when no subject has two images in one group."""
    if "subject_id" not in joined.columns or len(joined) == 0:
        return None
    subject = joined["subject_id"]
    blank = (subject.isna() | (subject.astype(str).str.strip() == "")).to_numpy()
    codes, uniques = pd.factorize(subject.astype(str).str.strip().where(~blank))  # NA -> -1
    codes = codes.astype(np.int64)
    # An image without a subject is a person of its own: give it a code no named subject has.
    codes[blank] = len(uniques) + np.flatnonzero(blank)
    span = len(uniques) + len(joined)
    keys, cluster = np.unique(group * span + codes, return_inverse=True)  # sorted: subjects by group
    if len(keys) == len(joined):
        return None  # every person once per group: independent-image inference is exact
    width = shape[0] * shape[1]
    entries, count = np.unique(cluster.ravel() * width + cell, return_counts=True)
    return ClusterCounts(
        group=(keys // span).astype(np.int64),
        entry_subject=(entries // width).astype(np.int64),
        entry_cell=(entries % width).astype(np.int64),
        entry_count=count.astype(np.int64),
        shape=shape,
    )
