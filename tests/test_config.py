"""thresholds.toml: the shipped file documents the real defaults, and every mistake is one exact line."""

import dataclasses
import hashlib
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_fairness.config import CRITERIA, CriterionConfig, Thresholds, load_thresholds, parse_thresholds
from fer_fairness.errors import ConfigError, FairnessError

SHIPPED = Path(__file__).resolve().parents[1] / "thresholds.toml"

SETTINGS_KEYS = "alpha, correction, family, mode, power, min_group_size, inconclusive, comparisons, max_not_evaluated"
CRITERIA_LIST = (
    "accuracy_gap, accuracy_gap_stratified, recall_gap, confusion_ratio, over_attribution, non_answer_gap, "
    "accuracy_floor, association, association_stratified, no_regression, score_shift, calibration_gap, adjusted_gap, "
    "robustness_gap, counterfactual_flip"
)
INTERSECTIONS_ALLOWED = (
    '"none", "all-pairs" or a non-empty list of lists of two or more distinct attributes, such as [["race", "gender"]]'
)
PAIRS_ALLOWED = (
    '"all" or a non-empty list of "true->wrong" pairs of two different emotions '
    '(anger, contempt, disgust, fear, happiness, neutral, sadness, surprise, calm), such as ["anger->disgust"]'
)

# What DESIGN.md and the shipped file document, written out by hand: a third witness beside the
# built-in defaults and the shipped file.
DOCUMENTED = {
    "alpha": 0.05,
    "correction": "holm",
    "family": "gate",
    "mode": "harm",
    "power": 0.8,
    "min_group_size": 30,
    "inconclusive": "skip",
    "comparisons": "reference",
    "max_not_evaluated": 0.01,
    "attributes": None,
    "intersections": "all-pairs",
    "intersection_comparisons": "like-with-like",
    "reference": {},
}
DOCUMENTED_BANDS = {
    "accuracy_gap": 0.05,
    "accuracy_gap_stratified": 0.05,
    "recall_gap": 0.10,
    "confusion_ratio": 1.5,
    "non_answer_gap": 0.02,
    "accuracy_floor": 0.5,
    "association": 0.10,
    "association_stratified": 0.10,
    "over_attribution": 1.5,
    "no_regression": 0.02,
    "score_shift": 0.05,
    "calibration_gap": 0.05,
    "adjusted_gap": 0.05,
    "robustness_gap": 0.05,
    "counterfactual_flip": 0.05,
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Thresholds:
    return load_thresholds(write(tmp_path, text))


def error_for(tmp_path: Path, text: str) -> tuple[str, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_thresholds(path)
    message = str(info.value)
    assert "\n" not in message, "a configuration error must be one line"
    return message, path


# --- the shipped file and the built-in defaults -----------------------------------------------


def test_shipped_file_equals_builtin_defaults_in_every_field():
    shipped = load_thresholds(SHIPPED)
    builtin = load_thresholds(None)
    compared = [f.name for f in dataclasses.fields(Thresholds) if f.name not in ("source", "digest")]
    assert compared, "Thresholds has no policy fields?"
    for name in compared:
        assert getattr(shipped, name) == getattr(builtin, name), (
            f"thresholds.toml and the built-in default differ in {name}"
        )


def test_builtin_defaults_are_the_documented_values():
    builtin = load_thresholds(None)
    for name, value in DOCUMENTED.items():
        assert getattr(builtin, name) == value, name
    assert set(builtin.criteria) == set(CRITERIA) == set(DOCUMENTED_BANDS)
    for name, band in DOCUMENTED_BANDS.items():
        criterion = builtin.criterion(name)
        assert criterion == CriterionConfig(name=name, enabled=True, threshold=band, owner="", rationale="", pairs=None)
        assert isinstance(criterion.threshold, float)


def test_shipped_file_spells_out_every_setting_and_every_criterion_band():
    # Parsed without the code under test: the commented file must show each default, not rely on absence.
    document = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    assert set(document) == {"settings", "groups", "reference", "criteria"}
    assert set(document["settings"]) == {k.strip() for k in SETTINGS_KEYS.split(",")}
    assert set(document["groups"]) == {"attributes", "intersections", "intersection_comparisons"}
    assert document["reference"] == {}  # no dataset-specific attribute in the shipped policy
    assert set(document["criteria"]) == set(DOCUMENTED_BANDS)
    for name, band in DOCUMENTED_BANDS.items():
        key = "minimum" if name == "accuracy_floor" else "tolerance"
        assert math.isclose(document["criteria"][name][key], band), name
    assert document["criteria"]["confusion_ratio"]["pairs"] == "all"


def test_source_and_digest():
    builtin = load_thresholds(None)
    assert builtin.source == "built-in defaults"
    assert builtin.digest == hashlib.sha256(b"").hexdigest()[:16]
    shipped = load_thresholds(SHIPPED)
    assert shipped.source == str(SHIPPED)
    assert shipped.digest == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()[:16]


def test_digest_changes_with_the_bytes_even_when_the_policy_does_not(tmp_path):
    first = load_text(tmp_path, "[settings]\nalpha = 0.05\n")
    second = load_text(tmp_path, "# a comment\n[settings]\nalpha = 0.05\n")
    assert first.alpha == second.alpha
    assert first.digest != second.digest


def test_empty_file_gives_the_defaults(tmp_path):
    loaded = load_text(tmp_path, "")
    assert dataclasses.replace(loaded, source="x", digest="x") == dataclasses.replace(
        load_thresholds(None), source="x", digest="x"
    )


# --- exact messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        pytest.param(
            "[setting]\nalpha = 0.05\n",
            "'setting' must be one of the sections [criteria], [groups], [reference], [settings]; got 'setting'",
            id="unknown-section",
        ),
        pytest.param(
            "[settings]\nalfa = 0.05\n",
            f"'settings.alfa' must be one of the known keys ({SETTINGS_KEYS}); got 'alfa'",
            id="unknown-setting",
        ),
        pytest.param(
            "[groups]\nattribute = 'all'\n",
            "'groups.attribute' must be one of the known keys "
            "(attributes, intersections, intersection_comparisons); got 'attribute'",
            id="unknown-groups-key",
        ),
        pytest.param(
            "[criteria.acuracy_gap]\ntolerance = 0.05\n",
            f"'criteria.acuracy_gap' must be one of the criteria ({CRITERIA_LIST}); got 'acuracy_gap'",
            id="unknown-criterion",
        ),
        pytest.param(
            "[criteria.accuracy_gap]\ntolerence = 0.05\n",
            "'criteria.accuracy_gap.tolerence' must be one of the known keys (enabled, owner, rationale, tolerance); "
            "got 'tolerence'",
            id="unknown-criterion-key",
        ),
        pytest.param(
            "[criteria.accuracy_floor]\ntolerance = 0.5\n",
            "'criteria.accuracy_floor.tolerance' must be one of the known keys (enabled, owner, rationale, minimum); "
            "got 'tolerance'",
            id="floor-has-a-minimum-not-a-tolerance",
        ),
        pytest.param(
            '[settings]\nalpha = "0.05"\n',
            "'settings.alpha' must be a number in (0, 0.5]; got '0.05'",
            id="alpha-string",
        ),
        pytest.param(
            "[settings]\nalpha = 0.7\n", "'settings.alpha' must be a number in (0, 0.5]; got 0.7", id="alpha-high"
        ),
        pytest.param(
            "[settings]\nalpha = 0\n", "'settings.alpha' must be a number in (0, 0.5]; got 0", id="alpha-zero"
        ),
        pytest.param(
            "[settings]\nalpha = nan\n", "'settings.alpha' must be a number in (0, 0.5]; got nan", id="alpha-nan"
        ),
        pytest.param(
            "[criteria.accuracy_gap]\ntolerance = 0\n",
            "'criteria.accuracy_gap.tolerance' must be a number in (0, 1]; got 0",
            id="tolerance-zero",
        ),
        pytest.param(
            "[criteria.confusion_ratio]\ntolerance = 1\n",
            "'criteria.confusion_ratio.tolerance' must be a number in (1, 100]; got 1",
            id="ratio-tolerance-one",
        ),
        pytest.param(
            "[criteria.confusion_ratio]\ntolerance = inf\n",
            "'criteria.confusion_ratio.tolerance' must be a number in (1, 100]; got inf",
            id="ratio-tolerance-inf",
        ),
        pytest.param(
            "[criteria.accuracy_floor]\nminimum = 1.0\n",
            "'criteria.accuracy_floor.minimum' must be a number in [0, 1); got 1.0",
            id="floor-one",
        ),
        pytest.param(
            "[settings]\npower = 1.0\n", "'settings.power' must be a number in [0.5, 1); got 1.0", id="power-one"
        ),
        pytest.param(
            "[settings]\npower = 0.4\n", "'settings.power' must be a number in [0.5, 1); got 0.4", id="power-low"
        ),
        pytest.param(
            "[settings]\nmin_group_size = true\n",
            "'settings.min_group_size' must be an integer in [1, 1000000]; got True",
            id="bool-for-integer",
        ),
        pytest.param(
            "[settings]\nalpha = true\n",
            "'settings.alpha' must be a number in (0, 0.5]; got True",
            id="bool-for-number",
        ),
        pytest.param(
            "[settings]\nmin_group_size = 30.0\n",
            "'settings.min_group_size' must be an integer in [1, 1000000]; got 30.0",
            id="float-for-integer",
        ),
        pytest.param(
            '[settings]\nmode = "strict"\n',
            "'settings.mode' must be one of \"harm\", \"equivalence\"; got 'strict'",
            id="mode",
        ),
        pytest.param(
            '[settings]\ncorrection = "bonferroni"\n',
            "'settings.correction' must be one of \"holm\", \"bh\"; got 'bonferroni'",
            id="correction",
        ),
        pytest.param(
            '[settings]\ncorrection = "Holm"\n',
            "'settings.correction' must be one of \"holm\", \"bh\"; got 'Holm'",
            id="correction-is-case-sensitive",
        ),
        pytest.param(
            '[criteria.recall_gap]\nenabled = "yes"\n',
            "'criteria.recall_gap.enabled' must be true or false; got 'yes'",
            id="enabled-string",
        ),
        pytest.param(
            "[criteria.recall_gap]\nowner = 3\n",
            "'criteria.recall_gap.owner' must be a string; got 3",
            id="owner-number",
        ),
        pytest.param(
            '[groups]\nintersections = "some"\n',
            f"'groups.intersections' must be {INTERSECTIONS_ALLOWED}; got 'some'",
            id="intersections-word",
        ),
        pytest.param(
            '[groups]\nintersections = [["race"]]\n',
            f"'groups.intersections' must be {INTERSECTIONS_ALLOWED}; got [['race']]",
            id="intersections-single",
        ),
        pytest.param(
            '[groups]\nintersections = ["race", "gender"]\n',
            f"'groups.intersections' must be {INTERSECTIONS_ALLOWED}; got ['race', 'gender']",
            id="intersections-flat",
        ),
        pytest.param(
            '[groups]\nintersections = [["race", ""]]\n',
            f"'groups.intersections' must be {INTERSECTIONS_ALLOWED}; got [['race', '']]",
            id="intersections-blank-name",
        ),
        pytest.param(
            '[groups]\nattributes = "every"\n',
            "'groups.attributes' must be \"all\" or a non-empty list of distinct names; got 'every'",
            id="attributes-word",
        ),
        pytest.param(
            '[groups]\nattributes = ["race", 1]\n',
            "'groups.attributes' must be \"all\" or a non-empty list of distinct names; got ['race', 1]",
            id="attributes-number",
        ),
        pytest.param(
            '[criteria.confusion_ratio]\npairs = ["anger-disgust"]\n',
            f"'criteria.confusion_ratio.pairs' must be {PAIRS_ALLOWED}; got ['anger-disgust']",
            id="pairs-arrow",
        ),
        pytest.param(
            '[criteria.confusion_ratio]\npairs = ["anger->disgust->fear"]\n',
            f"'criteria.confusion_ratio.pairs' must be {PAIRS_ALLOWED}; got ['anger->disgust->fear']",
            id="pairs-two-arrows",
        ),
        pytest.param(
            '[criteria.confusion_ratio]\npairs = "none"\n',
            f"'criteria.confusion_ratio.pairs' must be {PAIRS_ALLOWED}; got 'none'",
            id="pairs-word",
        ),
        pytest.param(
            '[criteria.confusion_ratio]\npairs = ["anger->digust"]\n',
            f"'criteria.confusion_ratio.pairs' must be {PAIRS_ALLOWED}; got ['anger->digust']",
            id="pairs-typo",
        ),
        pytest.param(
            '[criteria.confusion_ratio]\npairs = ["anger->anger"]\n',
            f"'criteria.confusion_ratio.pairs' must be {PAIRS_ALLOWED}; got ['anger->anger']",
            id="pairs-same-label",
        ),
        pytest.param(
            "[criteria.confusion_ratio]\npairs = []\n",
            f"'criteria.confusion_ratio.pairs' must be {PAIRS_ALLOWED}; got []",
            id="pairs-empty",
        ),
        pytest.param(
            "[groups]\nattributes = []\n",
            "'groups.attributes' must be \"all\" or a non-empty list of distinct names; got []",
            id="attributes-empty",
        ),
        pytest.param(
            '[groups]\nattributes = ["race", "race"]\n',
            "'groups.attributes' must be \"all\" or a non-empty list of distinct names; got ['race', 'race']",
            id="attributes-duplicate",
        ),
        pytest.param(
            '[groups]\nintersections = [["race", "race"]]\n',
            f"'groups.intersections' must be {INTERSECTIONS_ALLOWED}; got [['race', 'race']]",
            id="intersections-duplicate",
        ),
        pytest.param(
            '[criteria.accuracy_gap]\npairs = ["anger->disgust"]\n',
            "'criteria.accuracy_gap.pairs' must be one of the known keys "
            "(enabled, owner, rationale, tolerance); got 'pairs'",
            id="pairs-only-for-confusion-ratio",
        ),
        pytest.param(
            "[reference]\nrace = 1\n", "'reference.race' must be a group name (string); got 1", id="reference-number"
        ),
        pytest.param(
            '[reference]\nrace = ""\n', "'reference.race' must be a group name (string); got ''", id="reference-blank"
        ),
        pytest.param(
            "reference = 3\n", "'reference' must be a table of attribute = group; got 3", id="reference-not-table"
        ),
        pytest.param("settings = 1\n", "'settings' must be a table; got 1", id="settings-not-table"),
        pytest.param("criteria = 1\n", "'criteria' must be a table of criteria; got 1", id="criteria-not-table"),
        pytest.param(
            "[criteria]\naccuracy_gap = 3\n", "'criteria.accuracy_gap' must be a table; got 3", id="criterion-not-table"
        ),
    ],
)
def test_invalid_values_stop_with_one_exact_line(tmp_path, text, tail):
    message, path = error_for(tmp_path, text)
    assert message == f"{path}: {tail}"


def test_config_error_is_a_fairness_error():
    assert issubclass(ConfigError, FairnessError)


def test_malformed_toml(tmp_path):
    message, path = error_for(tmp_path, "[settings\nalpha = 0.05\n")
    assert message.startswith(f"{path}: not valid TOML (")
    assert message.endswith(")")
    assert "line 1" in message


def test_toml_that_is_not_utf8(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_bytes(b'[settings]\nmode = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_thresholds(path)
    assert str(info.value).startswith(f"{path}: not valid TOML (")
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_thresholds(path)
    assert str(info.value) == f"{path}: cannot read the thresholds file (No such file or directory)"


def test_a_directory_is_not_a_thresholds_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_thresholds(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read the thresholds file (Is a directory)"


def test_first_mistake_in_document_order_of_checks_is_reported(tmp_path):
    # Sections are checked before their contents: an unknown section wins over a bad value elsewhere.
    message, path = error_for(tmp_path, "[settings]\nalpha = 0.9\n[bogus]\nx = 1\n")
    assert message.startswith(f"{path}: 'bogus' must be one of the sections")


# --- valid values are honoured --------------------------------------------------------------------


def test_accepted_boundaries(tmp_path):
    loaded = load_text(
        tmp_path,
        "[settings]\nalpha = 0.5\npower = 0.5\nmin_group_size = 1\n"
        "[criteria.accuracy_gap]\ntolerance = 1\n[criteria.accuracy_floor]\nminimum = 0\n"
        "[criteria.confusion_ratio]\ntolerance = 100\n",
    )
    assert (loaded.alpha, loaded.power, loaded.min_group_size) == (0.5, 0.5, 1)
    assert loaded.criterion("accuracy_gap").threshold == 1.0
    assert isinstance(loaded.criterion("accuracy_gap").threshold, float)
    assert loaded.criterion("accuracy_floor").threshold == 0.0
    assert loaded.criterion("confusion_ratio").threshold == 100.0


def test_overrides_are_honoured_and_nothing_else_changes(tmp_path):
    loaded = load_text(
        tmp_path,
        """
[settings]
mode = "equivalence"
correction = "bh"
family = "run"
inconclusive = "fail"
comparisons = "all-pairs"

[groups]
attributes = ["race"]
intersections = "none"

[reference]
race = "White"
"race+gender" = "White+female"

[criteria.confusion_ratio]
pairs = ["anger->disgust"]
tolerance = 2.0
owner = "fairness team"
rationale = "the study's headline pair"

[criteria.recall_gap]
enabled = false
""",
    )
    assert loaded.mode == "equivalence"
    assert loaded.correction == "bh"
    assert loaded.family == "run"
    assert loaded.inconclusive == "fail"
    assert loaded.comparisons == "all-pairs"
    assert loaded.attributes == ("race",)
    assert loaded.intersections == "none"
    assert loaded.reference == {"race": "White", "race+gender": "White+female"}
    ratio = loaded.criterion("confusion_ratio")
    assert ratio == CriterionConfig(
        name="confusion_ratio",
        enabled=True,
        threshold=2.0,
        owner="fairness team",
        rationale="the study's headline pair",
        pairs=(("anger", "disgust"),),
    )
    assert loaded.criterion("recall_gap").enabled is False

    builtin = load_thresholds(None)
    for name in ("alpha", "power", "min_group_size"):
        assert getattr(loaded, name) == getattr(builtin, name), name
    for name in set(CRITERIA) - {"confusion_ratio", "recall_gap"}:
        assert loaded.criterion(name) == builtin.criterion(name), name


def test_pairs_keep_their_order(tmp_path):
    loaded = load_text(tmp_path, '[criteria.confusion_ratio]\npairs = ["fear->surprise", "anger->disgust"]\n')
    assert loaded.criterion("confusion_ratio").pairs == (("fear", "surprise"), ("anger", "disgust"))
    assert all(loaded.criterion(n).pairs is None for n in CRITERIA if n != "confusion_ratio")


def test_explicit_intersections_become_tuples(tmp_path):
    loaded = load_text(tmp_path, '[groups]\nintersections = [["race", "gender"], ["race", "gender", "age"]]\n')
    assert loaded.intersections == (("race", "gender"), ("race", "gender", "age"))


def test_explicit_all_keywords(tmp_path):
    loaded = load_text(
        tmp_path,
        '[groups]\nattributes = "all"\nintersections = "all-pairs"\n[criteria.confusion_ratio]\npairs = "all"\n',
    )
    assert loaded.attributes is None
    assert loaded.intersections == "all-pairs"
    assert loaded.criterion("confusion_ratio").pairs is None


# --- properties over the ranges --------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(alpha=st.floats(allow_nan=True, allow_infinity=True))
def test_alpha_accepted_exactly_on_its_range(alpha):
    inside = 0 < alpha <= 0.5
    document = {"settings": {"alpha": alpha}}
    if inside:
        assert parse_thresholds(document, source="t.toml").alpha == alpha
    else:
        with pytest.raises(ConfigError) as info:
            parse_thresholds(document, source="t.toml")
        assert str(info.value) == f"t.toml: 'settings.alpha' must be a number in (0, 0.5]; got {alpha!r}"


@settings(max_examples=60, deadline=None)
@given(size=st.integers(-10, 2_000_000))
def test_min_group_size_accepted_exactly_on_its_range(size):
    document = {"settings": {"min_group_size": size}}
    if 1 <= size <= 1_000_000:
        assert parse_thresholds(document, source="t.toml").min_group_size == size
    else:
        with pytest.raises(ConfigError, match=r"'settings\.min_group_size' must be an integer in \[1, 1000000\]; got "):
            parse_thresholds(document, source="t.toml")
