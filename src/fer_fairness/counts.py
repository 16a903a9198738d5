"""The count tensor: counts[group, true emotion, outcome] for one model x dataset x grouping.

Every criterion is computed from these counts, never from rows, so the statistics (and the
bootstrap) cost the same for ten thousand images as for a hundred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_fairness.errors import ModelError
from fer_fairness.labels import EMOTIONS, NON_ANSWERS

GROUP_JOIN = "+"  # "skin_tone+gender" = "dark+female"


@dataclass(frozen=True, kw_only=True)
class CountTensor:
    """Counts of (group, true emotion, outcome); outcomes are labels first, then non-answers."""

    attribute: str
    groups: tuple[str, ...]
    labels: tuple[str, ...]
    outcomes: tuple[str, ...]
    counts: np.ndarray  # int64, shape (len(groups), len(labels), len(outcomes))

    def group_sizes(self) -> dict[str, int]:
        return dict(zip(self.groups, self.counts.sum(axis=(1, 2)).tolist(), strict=True))

    def correct_mask(self) -> np.ndarray:
        """Boolean (T, O): where the outcome equals the true label."""
        return np.array([[o == t for o in self.outcomes] for t in self.labels])

    def non_answer_mask(self) -> np.ndarray:
        """Boolean (O,): outcomes that are non-answers."""
        return np.array([o in NON_ANSWERS for o in self.outcomes])


def join_outcomes(samples: pd.DataFrame, outcomes: pd.DataFrame, *, model: str, dataset: str) -> pd.DataFrame:
    """Attach each sample's outcome; every sample must have exactly one, and nothing else may appear."""
    duplicated = outcomes["sample_id"].duplicated(keep=False)
    if duplicated.any():
        ids = ", ".join(sorted(outcomes.loc[duplicated, "sample_id"].astype(str).unique())[:5])
        raise ModelError(f"model '{model}' gave more than one prediction for sample(s) {ids} of dataset '{dataset}'")
    known = set(samples["sample_id"])
    given = set(outcomes["sample_id"])
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


def build_counts(joined: pd.DataFrame, *, attributes: tuple[str, ...], labels: tuple[str, ...]) -> CountTensor:
    """Count tensor for one attribute, or an intersection when several attributes are given."""
    group = joined[list(attributes)].astype(str).agg(GROUP_JOIN.join, axis=1)
    predicted = set(joined["outcome"]) - set(NON_ANSWERS)
    outcome_axis = tuple(e for e in EMOTIONS if e in set(labels) | predicted) + NON_ANSWERS
    groups = tuple(sorted(group.unique()))
    table = pd.crosstab(
        [pd.Categorical(group, categories=groups), pd.Categorical(joined["emotion"], categories=labels)],
        pd.Categorical(joined["outcome"], categories=outcome_axis),
        dropna=False,
    )
    counts = table.to_numpy(dtype=np.int64).reshape(len(groups), len(labels), len(outcome_axis))
    if counts.sum() != len(joined):
        # Loaders validate labels and outcomes, so this is a bug, never a user's mistake: refuse to
        # evaluate on counts that silently lost rows.
        raise ValueError(f"count tensor holds {counts.sum()} of {len(joined)} rows; labels {labels}")
    return CountTensor(
        attribute=GROUP_JOIN.join(attributes),
        groups=groups,
        labels=labels,
        outcomes=outcome_axis,
        counts=counts,
    )
