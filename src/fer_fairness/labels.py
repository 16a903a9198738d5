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
# They are the model's behaviour, and a model that refuses one group more is biased.
MODEL_NON_ANSWERS: Final = ("refused", "unparseable")

# No answer arrived (a transport failure): the sample was not evaluated, so it is not the model's
# outcome. It keeps a column on the outcome axis so it is counted and shown, never scored.
NOT_EVALUATED: Final = "error"

NON_ANSWERS: Final = (*MODEL_NON_ANSWERS, NOT_EVALUATED)
