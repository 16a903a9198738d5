"""The one label vocabulary: canonical emotions and the kinds of non-answer."""

from typing import Final

EMOTIONS: Final = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "calm",
)

# The seven "basic" expressions most FER sets (and the synthetic default) use.
BASIC_SEVEN: Final = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

# A model that does not answer with a label answers with one of these; never with a random label.
NON_ANSWERS: Final = ("refused", "unparseable", "error")
