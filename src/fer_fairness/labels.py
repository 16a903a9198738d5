"""The one label vocabulary: canonical emotions, the names models use for them, and the non-answers."""

from collections.abc import Mapping
from types import MappingProxyType
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

# The words models and files use for each emotion: classifier label names (FER2013's "happy", "angry",
# AffectNet's "happiness", "anger"), predictions-file labels and chat answers (read as whole words, so
# "unhappy" is not "happy"). Every word names exactly one canonical emotion.
ALIASES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "anger": ("anger", "angry", "angered", "mad", "furious", "enraged", "rage", "irritated", "annoyed"),
        "contempt": ("contempt", "contemptuous", "disdain", "disdainful", "scorn", "scornful"),
        "disgust": ("disgust", "disgusted", "revulsion", "revolted", "repulsed"),
        "fear": ("fear", "fearful", "afraid", "scared", "frightened", "terrified"),
        "happiness": ("happiness", "happy", "joy", "joyful", "joyous", "glad", "cheerful", "delighted"),
        "neutral": ("neutral", "expressionless"),
        "sadness": ("sadness", "sad", "sorrow", "sorrowful", "unhappy", "unhappiness"),
        "surprise": ("surprise", "surprised", "astonished", "astonishment", "amazed", "amazement"),
        "calm": ("calm", "relaxed", "serene", "peaceful"),
    }
)
ALIAS_TO_EMOTION: Final[Mapping[str, str]] = MappingProxyType(
    {word: emotion for emotion, words in ALIASES.items() for word in words}
)


def canonical(name: str) -> str | None:
    """The canonical emotion a label name stands for ("Happy", " ANGRY ", "happiness"), or None.

    Case and surrounding space are ignored; anything else must match a word of ALIASES exactly.
    """
    return ALIAS_TO_EMOTION.get(name.strip().lower())


# The seven "basic" expressions most FER sets (and the synthetic default) use.
BASIC_SEVEN: Final = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

# A model that does not answer with a label answers with one of these; never with a random label.
# They are the model's behaviour, and a model that refuses one group more is biased.
MODEL_NON_ANSWERS: Final = ("refused", "unparseable")

# No answer arrived (a transport failure): the sample was not evaluated, so it is not the model's
# outcome. It keeps a column on the outcome axis so it is counted and shown, never scored.
NOT_EVALUATED: Final = "error"

NON_ANSWERS: Final = (*MODEL_NON_ANSWERS, NOT_EVALUATED)
