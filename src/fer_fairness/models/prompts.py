"""Every prompt and template the adapters send, in one place.

The rendered text is part of each cache key (a changed prompt is a new question) and appears in the
report (``prompts()``). Add an adapter's templates here under its own key, never inline in the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

TEMPLATES: Final = MappingProxyType(
    {
        # Chat models (openai, gemini): a closed label set, one word back. Structured output restricts
        # the answer to the same list where the API offers it; the strict parser reads free text.
        "chat": (
            "What facial expression does the person in this image show? "
            "Answer with exactly one word from this list: {labels}."
        ),
        # PaliGemma's documented task prefix for visual question answering, with the closed label set.
        "paligemma": "answer en What emotion does this face show? Choose one of: {labels}.",
    }
)


# CLIP zero-shot: each class is a text embedding averaged over the template ensemble below.
@dataclass(frozen=True)
class LabelWords:
    """How a canonical emotion is said in a prompt: as a noun phrase and as an adjective."""

    label: str
    adjective: str


# The one place where emotions become words for CLIP prompts ({label} and {adjective} in a template).
LABEL_WORDS: Final[Mapping[str, LabelWords]] = {
    "anger": LabelWords("anger", "angry"),
    "contempt": LabelWords("contempt", "contemptuous"),
    "disgust": LabelWords("disgust", "disgusted"),
    "fear": LabelWords("fear", "fearful"),
    "happiness": LabelWords("happiness", "happy"),
    "neutral": LabelWords("no emotion", "neutral"),
    "sadness": LabelWords("sadness", "sad"),
    "surprise": LabelWords("surprise", "surprised"),
    "calm": LabelWords("calm", "calm"),
}

# A facial-expression ensemble in the style of CLIP's ImageNet templates: several phrasings per class,
# their normalised text embeddings averaged, so no single wording decides the classifier.
CLIP_TEMPLATES: Final = (
    "a photo of a face showing {label}.",
    "a face expressing {label}.",
    "a photo of a person looking {adjective}.",
    "a close-up photo of a face that looks {adjective}.",
    "a photo of a person who feels {adjective}.",
    "a portrait of someone who is {adjective}.",
    "a black and white photo of a face showing {label}.",
)


def render(name: str, **values: str) -> str:
    """The template ``name`` with its fields filled in; an unknown name or a missing field is a bug."""
    return TEMPLATES[name].format(**values)


def chat_prompt(labels: Sequence[str]) -> str:
    """The chat question for a dataset's closed label set, in the dataset's label order."""
    return render("chat", labels=", ".join(labels))


def prompts() -> dict[str, str]:
    """Every template, unrendered, for the report."""
    return dict(TEMPLATES)
