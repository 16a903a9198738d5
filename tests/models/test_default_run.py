"""The offline default (synthetic set x hog-probe) shows the disparities it was built to show.

The gate's demonstration rests on these numbers: a clear skin-tone gap from the contrast mechanism,
and no gender gap because gender has no mechanism. Slow (about half a minute on two cores).
"""

from __future__ import annotations

import pytest

from fer_fairness.datasets.synthetic import load_synthetic
from fer_fairness.models._base import PredictContext
from fer_fairness.models.hog import HogEmbedder
from fer_fairness.models.probe import HOG_C_GRID, LinearProbe

pytestmark = pytest.mark.slow


def test_default_run_fails_skin_tone_and_passes_gender(tmp_path):
    dataset = load_synthetic(cache_dir=tmp_path, seed=0, progress=False)
    outcomes = LinearProbe(HogEmbedder(), c_grid=HOG_C_GRID).predict(
        dataset, context=PredictContext(seed=0, cache_dir=tmp_path, progress=False)
    )
    table = dataset.samples.merge(outcomes, on="sample_id", validate="one_to_one")
    correct = table["outcome"] == table["emotion"]
    by_tone = correct.groupby(table["skin_tone"]).mean()
    by_gender = correct.groupby(table["gender"]).mean()

    assert 0.6 <= correct.mean() <= 0.85
    assert by_tone["dark"] <= by_tone["light"] - 0.10
    assert by_tone["dark"] < by_tone["medium"] < by_tone["light"]
    assert abs(by_gender["female"] - by_gender["male"]) <= 0.015
    # shared cues make the expected confusions: lowered brows (anger, disgust), raised brows and wide
    # eyes (fear, surprise)
    for true, confused in (("anger", "disgust"), ("fear", "surprise"), ("surprise", "fear")):
        errors = table.loc[(table["emotion"] == true) & ~correct, "outcome"].value_counts()
        assert errors.index[0] == confused
