"""The torch adapters' words, prompts and parser: no torch needed, and none loaded by importing them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fer_fairness.errors import ConfigError
from fer_fairness.labels import BASIC_SEVEN, EMOTIONS
from fer_fairness.models.clip import DEFAULT_TEMPLATES, LABEL_WORDS, check_template, load_templates, prompts, render
from fer_fairness.models.paligemma import parse_answer, render_prompt

SEVEN = list(BASIC_SEVEN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("anger", "anger"),
        ("  Anger \n", "anger"),
        ("HAPPINESS.", "happiness"),
        ('"surprise"', "surprise"),
        ("angry", "anger"),
        ("happy", "happiness"),
        ("sad", "sadness"),
        ("surprised", "surprise"),
        ("afraid", "fear"),
        ("scared", "fear"),
        ("Disgusted", "disgust"),
        ("neutral", "neutral"),
        ("", "unparseable"),
        ("anger disgust", "unparseable"),
        ("anger, disgust", "unparseable"),
        ("not angry", "unparseable"),
        ("very happy", "unparseable"),
        ("happiness!?", "unparseable"),
        ("angerr", "unparseable"),
        ("<loc0012>", "unparseable"),
        ("contempt", "unparseable"),  # a canonical emotion, but not offered
        ("contemptuous", "unparseable"),
        ("calm", "unparseable"),
    ],
)
def test_parser_is_strict(text, expected):
    assert parse_answer(text, SEVEN) == expected


def test_parser_accepts_offered_labels_beyond_the_basic_seven():
    assert parse_answer("contemptuous", ["contempt", "anger"]) == "contempt"
    assert parse_answer("calm", ["calm", "neutral"]) == "calm"
    assert parse_answer("happy", ["anger", "disgust"]) == "unparseable"


def test_prompt_lists_the_offered_labels_in_order():
    assert render_prompt(["anger", "calm"]) == "answer en What emotion does this face show? Choose one of: anger, calm."


def test_every_emotion_has_words_for_every_default_template():
    assert set(LABEL_WORDS) == set(EMOTIONS)
    for template in DEFAULT_TEMPLATES:
        check_template(template, source="defaults")
        rendered = {render(template, emotion) for emotion in EMOTIONS}
        assert len(rendered) == len(EMOTIONS)  # every class gets its own text
    assert render("a photo of a person looking {adjective}.", "happiness") == "a photo of a person looking happy."
    assert render("a face expressing {label}.", "neutral") == "a face expressing no emotion."


def test_prompts_for_the_report():
    shown = prompts()
    assert shown["templates"].splitlines() == list(DEFAULT_TEMPLATES)
    assert "anger: anger / angry" in shown["label words"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("a photo of {emotion}.", r"must use \{label\} and/or \{adjective\} and nothing else; has \{emotion\}"),
        ("a photo of a face.", r"has no field"),
        ("a photo of {}.", r"has \{\}"),
        ("a photo of {label", r"is not a valid format string"),
        ("# only a comment\n\n", r"holds no template"),
    ],
)
def test_bad_template_files_are_usage_errors(tmp_path, lines, message):
    path = tmp_path / "t.txt"
    path.write_text(lines)
    with pytest.raises(ConfigError, match=message):
        load_templates(path)


def test_importing_the_adapters_loads_no_heavy_library():
    code = (
        "import sys, fer_fairness.plugin, fer_fairness.models, fer_fairness.models.clip, "
        "fer_fairness.models.paligemma\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'transformers', 'tokenizers') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
