"""Dataset bias before any model: balance and group x emotion association, against independent oracles."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from scipy.stats.contingency import association as scipy_association
from sklearn.metrics import normalized_mutual_info_score

from fer_fairness import dataset_bias
from fer_fairness.errors import DatasetWarning

EMOTIONS = ("anger", "happiness", "neutral", "sadness")


def _dataset(mix: dict[str, dict[str, int]], name: str = "toy") -> SimpleNamespace:
    rows = [(g, e) for g, counts in mix.items() for e, k in counts.items() for _ in range(k)]
    samples = pd.DataFrame(rows, columns=["race", "emotion"])
    return SimpleNamespace(name=name, samples=samples, attributes=("race",))


def _describe(dataset) -> tuple[dict, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        facts = dataset_bias.describe(dataset)
    return facts, [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]


def test_a_group_photographed_showing_other_emotions_raises_the_association_warning():
    mix = {
        "Black": {"anger": 300, "happiness": 100, "neutral": 200, "sadness": 150},
        "White": {"anger": 100, "happiness": 350, "neutral": 200, "sadness": 150},
    }
    facts, said = _describe(_dataset(mix))
    race = facts["race"]
    assert race["strong"] and race["association"]["low"] > dataset_bias.STRONG_ASSOCIATION
    (message,) = said
    assert "dataset 'toy': race and true emotion are associated" in message
    assert "accuracy_gap_stratified" in message and "association_stratified" in message


def test_the_same_emotion_mix_in_every_group_raises_no_warning():
    same = {"anger": 100, "happiness": 200, "neutral": 150, "sadness": 50}
    facts, said = _describe(
        _dataset({"Black": same, "White": dict(same), "Asian": {k: v // 2 for k, v in same.items()}})
    )
    assert said == [] and not facts["race"]["strong"]
    assert facts["race"]["association"]["cramers_v"] == pytest.approx(0.0, abs=1e-12)
    assert facts["race"]["association"]["low"] == 0.0


def test_a_weak_association_that_the_data_cannot_place_above_the_line_does_not_warn():
    # V is about 0.12, but 200 faces cannot show it is above 0.1: the lower bound decides.
    mix = {
        "Black": {"anger": 30, "happiness": 20, "neutral": 25, "sadness": 25},
        "White": {"anger": 20, "happiness": 30, "neutral": 25, "sadness": 25},
    }
    facts, said = _describe(_dataset(mix))
    assert facts["race"]["association"]["cramers_v"] > 0.1 and said == []


@pytest.mark.parametrize(
    "table",
    [
        [[30, 10, 5], [10, 30, 20]],
        [[5, 0, 7, 9], [8, 3, 0, 2], [1, 1, 1, 30]],
        [[100, 100], [100, 100]],
        [[12, 40, 7, 3, 9, 11, 2], [30, 8, 9, 7, 10, 4, 20]],
    ],
)
def test_cramers_v_and_nmi_agree_with_scipy_and_scikit_learn(table):
    table = np.array(table)
    result = dataset_bias.association(table)
    assert result.cramers_v == pytest.approx(scipy_association(table, method="cramer", correction=False))
    groups = np.repeat(np.arange(table.shape[0]), table.sum(axis=1))
    emotions = np.concatenate([np.repeat(np.arange(table.shape[1]), row) for row in table])
    assert result.nmi == pytest.approx(normalized_mutual_info_score(groups, emotions), abs=1e-12)
    # The interval holds the estimate, and excludes 0 exactly when Pearson's test rejects at 5% (duality).
    assert result.low <= result.cramers_v <= result.high
    p = chi2_contingency(table, correction=False).pvalue
    assert (result.low > 0) == (p < 0.05)


def test_shares_and_the_smallest_groups_wilson_interval():
    mix = {"Black": {"anger": 30, "happiness": 20}, "White": {"anger": 100, "happiness": 250}}
    facts, _ = _describe(_dataset(mix))
    race = facts["race"]
    assert race["shares"] == {"Black": pytest.approx(50 / 400), "White": pytest.approx(350 / 400)}
    smallest = race["smallest"]
    # Wilson 1927 by hand: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    p, n, z = 50 / 400, 400, 1.959963984540054
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert smallest["group"] == "Black" and smallest["share"] == pytest.approx(p)
    assert (smallest["low"], smallest["high"]) == pytest.approx(
        ((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n))
    )
