"""The strict answer parser: one named emotion or a non-answer, never a guess."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fer_fairness.labels import EMOTIONS, NON_ANSWERS
from fer_fairness.models.parsing import (
    NEGATORS,
    SYNONYMS,
    is_refusal,
    mentioned_emotions,
    parse_choice,
    parse_json_answer,
    parse_text,
)

SEVEN = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # synonyms, any case, any surrounding words
        ("anger", "anger"),
        ("Angry.", "anger"),
        ("The person looks MAD", "anger"),
        ("happy", "happiness"),
        ("Happiness", "happiness"),
        ("pure joy", "happiness"),
        ("sad", "sadness"),
        ("They seem unhappy.", "sadness"),
        ("surprised!", "surprise"),
        ("scared", "fear"),
        ("She is afraid", "fear"),
        ("disgusted", "disgust"),
        ("Expression: neutral", "neutral"),
        ("angry angry anger", "anger"),  # the same emotion named three times is one emotion
        ("\u201cAngry\u201d", "anger"),
        # negation guard
        ("not angry", "unparseable"),
        ("The person is not angry, they are sad.", "sadness"),
        ("not happy but sad", "sadness"),
        ("He doesn\u2019t look happy; he looks sad", "sadness"),
        ("neither angry nor sad", "unparseable"),
        ("no fear at all, just surprise", "surprise"),
        ("without any sign of disgust", "unparseable"),
        ("No. Happy.", "happiness"),
        # exactly one distinct emotion, or unparseable
        ("angry or disgusted", "unparseable"),
        ("Anger, maybe fear", "unparseable"),
        ("happy and surprised", "unparseable"),
        ("", "unparseable"),
        ("   ", "unparseable"),
        ("the face shows a frown", "unparseable"),
        ("happily", "unparseable"),  # whole words only
        ("calm", "unparseable"),  # a real emotion, but outside this dataset's label set
        ("contemptuous", "unparseable"),
        # refusals
        ("I'm sorry, but I can't help with that.", "refused"),
        ("I cannot identify emotions of real people.", "refused"),
        ("I am unable to determine the emotion from this image.", "refused"),
        ("As an AI, I do not analyze faces.", "refused"),
        ("I\u2019m not able to help with that request.", "refused"),
        ("Sorry \u2014 I can\u2019t assist with identifying people\u2019s feelings, such as anger.", "refused"),
        ("I must decline.", "refused"),
    ],
)
def test_free_text(text, expected):
    assert parse_text(text, SEVEN).outcome == expected


def test_a_label_outside_the_set_is_named_in_the_reason():
    parsed = parse_text("They look calm.", SEVEN)
    assert parsed == parse_text("They look calm.", SEVEN)
    assert parsed.outcome == "unparseable" and "calm" in parsed.reason
    assert parse_text("They look calm.", (*SEVEN, "calm")).outcome == "calm"


def test_several_emotions_are_listed_in_the_reason():
    assert parse_text("anger or disgust", SEVEN).reason == "names several emotions (anger, disgust)"


@pytest.mark.parametrize(
    ("content", "expected", "reason"),
    [
        ('{"emotion": "anger"}', "anger", "structured"),
        ('{"emotion": "Anger "}', "anger", "structured"),
        ('```json\n{"emotion": "fear"}\n```', "fear", "structured"),
        ('{"emotion": "angry"}', "anger", "free text"),  # a synonym in the field: read strictly
        ('{"emotion": "calm"}', "unparseable", "names calm, which is not in the label set"),
        ('{"emotion": "ang', "unparseable", "malformed JSON"),
        ('{"label": "anger"}', "unparseable", "JSON without a string 'emotion'"),
        ('{"emotion": 3}', "unparseable", "JSON without a string 'emotion'"),
        ("The person looks happy.", "happiness", "free text"),
        ("I'm sorry, I can't help with that.", "refused", "refusal phrasing"),
        (None, "unparseable", "empty answer"),
    ],
)
def test_json_answers(content, expected, reason):
    parsed = parse_json_answer(content, SEVEN)
    assert parsed.outcome == expected
    assert parsed.reason.startswith(reason)


def test_enum_choices():
    assert parse_choice("surprise", SEVEN).outcome == "surprise"
    assert parse_choice(" Surprise\n", SEVEN).outcome == "surprise"
    assert parse_choice("surprised", SEVEN).outcome == "surprise"
    assert parse_choice("", SEVEN).outcome == "unparseable"
    assert parse_choice(None, SEVEN).outcome == "unparseable"


def test_labels_must_be_canonical():
    with pytest.raises(ValueError, match="labels must be canonical emotions"):
        parse_text("angry", ("angry",))


def test_every_synonym_names_one_emotion_of_the_vocabulary():
    words = [word for words in SYNONYMS.values() for word in words]
    assert len(words) == len(set(words))
    assert set(SYNONYMS) == set(EMOTIONS)
    for emotion, synonyms in SYNONYMS.items():
        for word in synonyms:
            assert parse_text(word, EMOTIONS).outcome == emotion


# -- properties -----------------------------------------------------------------------------------

WORDS = st.sampled_from(
    [w for ws in SYNONYMS.values() for w in ws]
    + sorted(NEGATORS)
    + ["the", "person", "looks", "is", "but", "very", "face", "I", "sorry", "can't", "help", "and", "or", "a"]
)
TEXTS = st.one_of(
    st.text(max_size=80),
    st.lists(st.tuples(WORDS, st.sampled_from([" ", ", ", ". ", "; ", "\n"])), max_size=12).map(
        lambda pairs: "".join(w + sep for w, sep in pairs)
    ),
)
LABEL_SETS = st.sets(st.sampled_from(EMOTIONS), min_size=1).map(lambda s: tuple(e for e in EMOTIONS if e in s))


def _synonym_in(text: str, emotion: str) -> bool:
    words = set(re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower().replace("\u2019", "'")))
    return bool(words & set(SYNONYMS[emotion]))


@given(text=TEXTS, labels=LABEL_SETS)
def test_a_label_is_always_named_in_the_text_and_in_the_set(text, labels):
    parsed = parse_text(text, labels)
    assert parsed.outcome in labels or parsed.outcome in NON_ANSWERS
    if parsed.outcome in labels:
        assert _synonym_in(text, parsed.outcome)
        assert mentioned_emotions(text) == [parsed.outcome]


@given(text=TEXTS, labels=LABEL_SETS)
def test_parsing_is_deterministic_and_json_agrees(text, labels):
    assert parse_text(text, labels) == parse_text(text, labels)
    structured = parse_json_answer(json.dumps({"emotion": text}), labels)
    assert structured.outcome in labels or structured.outcome in NON_ANSWERS


@given(emotion=st.sampled_from(EMOTIONS), negator=st.sampled_from(sorted(NEGATORS)), word_index=st.integers(0, 20))
def test_a_negated_mention_is_never_the_answer(emotion, negator, word_index):
    synonyms = SYNONYMS[emotion]
    word = synonyms[word_index % len(synonyms)]
    assert parse_text(f"{negator} {word}", EMOTIONS).outcome == "unparseable"
    assert parse_text(f"The face is {negator} really {word}", EMOTIONS).outcome != emotion


@given(text=TEXTS)
def test_a_refusal_wins_over_any_label(text):
    assert parse_text(f"I'm sorry, I can't help with that. {text}", EMOTIONS).outcome == "refused"
    assert is_refusal(f"{text} I cannot identify that")
