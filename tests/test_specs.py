"""Spec strings: kind, target and options, and the one-line mistakes."""

import pytest

from fer_fairness.datasets import DATASETS
from fer_fairness.errors import ConfigError
from fer_fairness.models import MODELS


def test_kind_target_and_options_with_literal_plus_and_percent_escapes():
    spec = DATASETS.parse("manifest:data/faces v2.csv?name=study&attributes=race,gender&race%2Bgender=a+b")
    assert (spec.kind, spec.target) == ("manifest", "data/faces v2.csv")
    assert spec.options == {"name": "study", "attributes": "race,gender", "race+gender": "a+b"}


def test_options_on_a_kind_without_target():
    spec = MODELS.parse("hog-probe?name=baseline")
    assert (spec.kind, spec.target, spec.options) == ("hog-probe", "", {"name": "baseline"})


def test_a_kind_that_needs_a_target_says_so():
    with pytest.raises(ConfigError) as info:
        DATASETS.parse("manifest:")
    assert str(info.value) == "dataset 'manifest:' needs a target after the colon: manifest:PATH.csv|PATH.parquet"


def test_unknown_kind_suggests_the_closest():
    with pytest.raises(
        ConfigError, match=r"unknown model kind 'clip-zeroshoot' in 'clip-zeroshoot:x'; did you mean 'clip-zeroshot'\?"
    ):
        MODELS.parse("clip-zeroshoot:x")
