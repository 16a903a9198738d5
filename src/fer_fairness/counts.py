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


@dataclass(frozen=True)
class PersonSums:
    """Sums over one group's persons of a selector's (x_s events, n_s images): how many persons have an
    image counted, the sums of x_s and n_s, and of x_s^2, x_s n_s and n_s^2 (stats.design_effect_of_sums)."""

    persons: int
    x: int  # the group's events and images as the cell weights count them
    n: int
    xx: int
    xn: int
    nn: int


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
    # Per group: its index ranges, cell Gram matrix and persons per set of cells, computed once.
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

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
        weights = self._cell_weights(select, tensor, detail)
        local = self.entry_subject[lo:hi] - first
        cell, count = self.entry_cell[lo:hi], self.entry_count[lo:hi]
        return tuple(np.bincount(local, weights=count * w[cell], minlength=last - first) for w in weights)

    def sums(self, g: int, select, tensor: CountTensor, detail) -> PersonSums | None:
        """What the design effect of group g under ``select`` needs of its persons, without a pass over
        them per selector: (x_s, n_s) are linear in the cells, so the sums over persons of x_s^2,
        x_s n_s and n_s^2 are quadratic forms in the cell weights of the group's cell Gram matrix
        (computed once per group), and the persons with any image counted are looked up per set of
        cells. Exact integers, like the per-person sums. None where the selector is not a count of
        images (weights that are not whole, negative, or events outside the images counted): the
        caller then reads ``per_subject``.
        """
        w_x, w_n = self._cell_weights(select, tensor, detail)
        if not all(np.issubdtype(w.dtype, np.integer) or np.array_equal(w, np.round(w)) for w in (w_x, w_n)):
            return None
        w_x, w_n = w_x.astype(np.int64), w_n.astype(np.int64)
        if (w_n < 0).any() or (w_x < 0).any() or ((w_x != 0) & (w_n == 0)).any():
            return None
        gram, total = self._gram(g), tensor.counts[g].ravel()
        return PersonSums(
            persons=self._persons(g, w_n > 0),
            x=int(total @ w_x),
            n=int(total @ w_n),
            xx=int(w_x @ gram @ w_x),
            xn=int(w_x @ gram @ w_n),
            nn=int(w_n @ gram @ w_n),
        )

    def _cell_weights(self, select, tensor: CountTensor, detail) -> tuple[np.ndarray, np.ndarray]:
        """The weight of each (true, outcome) cell in the selector's (events, images): the selector
        applied once to the one-hot basis of the cells (a sum over cells is linear in them)."""
        width = self.shape[0] * self.shape[1]
        basis = np.eye(width, dtype=np.int64).reshape(width, *self.shape)
        w_x, w_n = (np.broadcast_to(np.asarray(w), (width,)) for w in select(basis, tensor, detail))
        return w_x, w_n

    def _gram(self, g: int) -> np.ndarray:
        """Group g's cells x cells matrix of sum over persons of count(cell i) * count(cell j)."""
        key = ("gram", g)
        if key not in self._memo:
            from scipy import sparse

            first, last, lo, hi = self._range(g)
            width = self.shape[0] * self.shape[1]
            per_person = sparse.csr_matrix(
                (self.entry_count[lo:hi], (self.entry_subject[lo:hi] - first, self.entry_cell[lo:hi])),
                shape=(last - first, width),
                dtype=np.int64,
            )
            self._memo[key] = (per_person.T @ per_person).toarray()
        return self._memo[key]

    def _persons(self, g: int, cells: np.ndarray) -> int:
        """How many of group g's persons have an image in any of ``cells`` (a boolean per cell)."""
        key = ("persons", g, cells.tobytes())
        if key not in self._memo:
            first, last, lo, hi = self._range(g)
            chosen = cells[self.entry_cell[lo:hi]] & (self.entry_count[lo:hi] > 0)
            subjects = self.entry_subject[lo:hi][chosen]  # non-decreasing: a new person where it steps up
            self._memo[key] = int(len(subjects) > 0) + int(np.count_nonzero(subjects[1:] != subjects[:-1]))
        return self._memo[key]

    def _range(self, g: int) -> tuple[int, int, int, int]:
        if g not in self._memo:
            first, last = np.searchsorted(self.group, [g, g + 1])
            lo, hi = np.searchsorted(self.entry_subject, [first, last])
            self._memo[g] = (int(first), int(last), int(lo), int(hi))
        return self._memo[g]


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
    if _same_order(samples["sample_id"], outcomes["sample_id"]):
        # The usual case (a model answers in the samples' order; a predictions file written from the
        # manifest): one comparison, no hash of a million ids. Sample ids are unique (check_dataset).
        return samples.assign(outcome=outcomes["outcome"].array)
    duplicated = outcomes["sample_id"].duplicated(keep=False)
    if duplicated.any():
        ids = ", ".join(sorted(outcomes.loc[duplicated, "sample_id"].astype(str).unique())[:5])
        raise ModelError(f"model '{model}' gave more than one prediction for sample(s) {ids} of dataset '{dataset}'")
    # Each sample's row in the predictions by one hash lookup (a merge copies both tables).
    given = pd.Index(outcomes["sample_id"])
    position = given.get_indexer(samples["sample_id"])
    absent = position < 0
    if absent.any():
        missing = sorted(pd.unique(samples["sample_id"][absent]).astype(str))
        known = samples["sample_id"].nunique()
        raise ModelError(
            f"model '{model}' has no prediction for {len(missing)} of {known} samples of dataset "
            f"'{dataset}' (e.g. {', '.join(missing[:3])}); every sample must be evaluated, "
            f"mark a failure to answer as refused, unparseable or error"
        )
    if len(given) > len(np.unique(position)):
        extra = sorted(given.difference(pd.Index(samples["sample_id"])).astype(str))
        raise ModelError(
            f"model '{model}' has predictions for {len(extra)} sample id(s) that dataset '{dataset}' lacks "
            f"(e.g. {', '.join(map(str, extra[:3]))}); are the predictions for another dataset?"
        )
    return samples.assign(outcome=outcomes["outcome"].array.take(position))  # stays Arrow text if it was


def _same_order(ids: pd.Series, given: pd.Series) -> bool:
    """Whether ``given`` lists exactly ``ids`` in the same order (a missing id is never equal)."""
    if len(ids) != len(given):
        return False
    equal = pd.array(given.array == ids.array, dtype="boolean")
    return bool(equal.fillna(False).all())


def group_names(frame: pd.DataFrame, attributes: tuple[str, ...]) -> pd.Series:
    """Each row's group in a grouping: its attribute values joined by GROUP_JOIN ("dark+female")."""
    group = frame[attributes[0]].astype(str)
    for attribute in attributes[1:]:
        group = group + GROUP_JOIN + frame[attribute].astype(str)
    return group


@dataclass(frozen=True)
class Coded:
    """A joined table's columns factorised once: per column, integer codes and the values they stand
    for (as text, the way group names write them). Every grouping's counts are then integer arithmetic
    and one bincount, never a pass over a million strings per grouping."""

    columns: dict[str, tuple[np.ndarray, tuple[str, ...]]]
    subjects: np.ndarray | None  # person code per row (a blank subject is a person of its own), or None
    # Per grouping, what groups() and group_index() found: counts, cells and rows all ask for it.
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, joined: pd.DataFrame, columns) -> Coded:
        coded = {}
        for column in dict.fromkeys(columns):
            values = joined[column]
            if not pd.api.types.is_string_dtype(values):
                values = values.astype(str)  # as group names write them
            codes, uniques = pd.factorize(values, use_na_sentinel=False)
            coded[column] = (codes.astype(np.int64), tuple(str(u) for u in uniques))
        return cls(coded, subject_codes(joined))

    def groups(self, attributes: tuple[str, ...]) -> tuple[np.ndarray, tuple[tuple[str, ...], ...]]:
        """Each row's cell of the grouping as a code, and each code's value per attribute."""
        key = ("groups", tuple(attributes))
        if key not in self._memo:
            self._memo[key] = self._groups(tuple(attributes))
        return self._memo[key]

    def group_index(self, attributes: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
        """Each row's group as an index into the grouping's sorted group names ("dark+female"), and the names."""
        key = ("group_index", tuple(attributes))
        if key not in self._memo:
            cell_code, cells = self.groups(attributes)
            names = [GROUP_JOIN.join(values) for values in cells]
            groups = tuple(sorted(set(names)))
            g = np.array([groups.index(name) for name in names], dtype=np.int64)[cell_code] if names else cell_code
            self._memo[key] = (g, groups)
        return self._memo[key]

    def _groups(self, attributes: tuple[str, ...]) -> tuple[np.ndarray, tuple[tuple[str, ...], ...]]:
        code, width = np.zeros(len(next(iter(self.columns.values()))[0]), dtype=np.int64), 1
        for attribute in reversed(attributes):
            codes, uniques = self.columns[attribute]
            code, width = code + codes * width, width * len(uniques)
        present, cell = _compact(code, width)
        values = []
        for combined in present.tolist():
            parts = []
            for attribute in reversed(attributes):
                uniques = self.columns[attribute][1]
                combined, index = divmod(combined, len(uniques))
                parts.append(uniques[index])
            values.append(tuple(reversed(parts)))
        return cell, tuple(values)


def _compact(code: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``code`` (ascending) and each row's position among them: np.unique's
    (values, inverse), by one bincount where the values are bounded by ``width`` (no sort of the rows)."""
    if width > max(4 * len(code), 1 << 16):  # a sparse product of many attributes: sorting is cheaper
        present, cell = np.unique(code, return_inverse=True)
        return present, cell.ravel().astype(np.int64)
    present = np.flatnonzero(np.bincount(code, minlength=width))
    position = np.zeros(width, dtype=np.int64)
    position[present] = np.arange(len(present))
    return present, position[code]


def _lookup(codes: np.ndarray, uniques: tuple[str, ...], axis: tuple[str, ...]) -> np.ndarray:
    """Codes of one factorisation renumbered to positions on ``axis`` (-1 where a value is not on it)."""
    table = np.array([axis.index(u) if u in axis else -1 for u in uniques], dtype=np.int64)
    return table[codes] if len(table) else np.zeros(0, dtype=np.int64)


def build_counts(
    joined: pd.DataFrame, *, attributes: tuple[str, ...], labels: tuple[str, ...], coded: Coded | None = None
) -> CountTensor:
    """Count tensor for one attribute, or an intersection when several attributes are given.

    Per-subject counts (``clusters``) come from the ``subject_id`` column where one person has
    several images in a group; images without a subject id each count as their own person.
    ``coded``: the table's columns factorised once (Coded.of), shared by every grouping of it.
    """
    if coded is None:
        coded = Coded.of(joined, [*attributes, "emotion", "outcome"])
    g, groups = coded.group_index(attributes)
    outcome_codes, outcome_values = coded.columns["outcome"]
    predicted = set(outcome_values) - set(NON_ANSWERS)
    outcome_axis = tuple(e for e in EMOTIONS if e in set(labels) | predicted) + NON_ANSWERS
    t = _lookup(*coded.columns["emotion"], labels)
    o = _lookup(outcome_codes, outcome_values, outcome_axis)
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
        clusters=_clusters(coded.subjects, g, cell, shape=(len(labels), len(outcome_axis))),
    )


def subject_codes(joined: pd.DataFrame) -> np.ndarray | None:
    """A person code per row; an image without a subject is a person of its own (a code no named
    subject has). None without a subject column."""
    if "subject_id" not in joined.columns or len(joined) == 0:
        return None
    subject = joined["subject_id"]
    blank = (subject.isna() | (subject.astype(str).str.strip() == "")).to_numpy()
    codes, uniques = pd.factorize(subject.astype(str).str.strip().where(~blank))  # NA -> -1
    codes = codes.astype(np.int64)
    codes[blank] = len(uniques) + np.flatnonzero(blank)
    return codes


def _clusters(
    codes: np.ndarray | None, group: np.ndarray, cell: np.ndarray, *, shape: tuple[int, int]
) -> ClusterCounts | None:
    """Per-(group, subject) counts, or None when no subject has two images in one group."""
    if codes is None:
        return None
    span = int(codes.max()) + 1 if len(codes) else 1
    groups = int(group.max()) + 1 if len(group) else 1
    keys, cluster = _compact(group * span + codes, groups * span)  # ascending: subjects by group
    if len(keys) == len(codes):
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
