"""Spec strings: kind, target and options, and the one-line mistakes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fer_fairness.datasets import DATASETS
from fer_fairness.datasets._table import quote_name
from fer_fairness.errors import ConfigError
from fer_fairness.models import MODELS
from fer_fairness.specs import value_map


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


# --- mistakes that used to pass silently -------------------------------------------------------------


def test_a_repeated_key_is_an_error_not_the_last_wins():
    with pytest.raises(ConfigError) as info:
        DATASETS.parse("manifest:f.csv?name=a&attributes=race&name=b")
    assert (
        str(info.value)
        == "dataset 'manifest:f.csv?name=a&attributes=race&name=b': option 'name' is given twice; give it once"
    )


@pytest.mark.parametrize("query", ["name=", "name", "name=%20", "name=  "])
def test_an_empty_value_is_an_error_not_the_default(query):
    with pytest.raises(ConfigError) as info:
        MODELS.parse(f"hog-probe?{query}")
    assert str(info.value) == f"model 'hog-probe?{query}': option 'name' has no value; give one or leave the option out"


def test_a_value_without_a_key():
    with pytest.raises(ConfigError, match=r"^dataset 'manifest:f.csv\?=x': '=x' names no option; give one or leave"):
        DATASETS.parse("manifest:f.csv?=x")


def test_names_are_stripped_and_kept_in_order():
    spec = DATASETS.parse("manifest:f.csv?attributes= gender ,race,")
    assert spec.names("attributes", what="dataset") == ("gender", "race")
    assert spec.names("other", what="dataset") is None


# --- ?map= ------------------------------------------------------------------------------------------


def test_value_map_over_several_attributes():
    spec = DATASETS.parse("manifest:f.csv?map=gender:F=female, M=male;race:NA=North America;age:unknown=")
    assert value_map(spec, "map", what="dataset") == {
        "gender": {"F": "female", "M": "male"},
        "race": {"NA": "North America"},
        "age": {"unknown": ""},
    }
    assert value_map(DATASETS.parse("manifest:f.csv"), "map", what="dataset") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gender", "cannot read 'gender' in ?map="),
        ("gender:", "cannot read 'gender:' in ?map="),
        (":F=female", "cannot read ':F=female' in ?map="),
        ("gender:F", "cannot read 'gender:F' in ?map="),
        ("gender:=female", "cannot read 'gender:=female' in ?map="),
        ("gender:F=female;gender:M=male", "?map= maps 'gender' twice; give its values in one part"),
        ("gender:F=female,F=male", "?map= maps gender 'F' to both 'female' and 'male'"),
    ],
)
def test_value_map_mistakes(text, message):
    spec = DATASETS.parse(f"manifest:f.csv?map={text}")
    with pytest.raises(ConfigError) as info:
        value_map(spec, "map", what="dataset")
    assert str(info.value).startswith(f"dataset 'manifest:f.csv?map={text}': {message}")


names = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() == s and s)


@given(attribute=names, old=names, new=st.text(max_size=12).map(str.strip))
def test_any_name_survives_the_map_once_escaped(attribute, old, new):
    text = f"manifest:f.csv?map={quote_name(attribute)}:{quote_name(old)}={quote_name(new)}&name=x"
    assert value_map(DATASETS.parse(text), "map", what="dataset") == {attribute: {old: new}}
