"""The strict reader of chat answers: a label only when the text names exactly one, else a non-answer.

Free text becomes a label when, after dropping negated mentions ("not angry"), exactly one canonical
emotion is named (through its synonyms) and that emotion is in the dataset's closed label set.
Anything else is ``unparseable``; typical refusal phrasings are ``refused``. There is no default
label and no guessing: a model that does not answer is counted as not answering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from fer_fairness.labels import ALIAS_TO_EMOTION, ALIASES, EMOTIONS

# Whole words only: "unhappy" is not "happy". The synonym table is the label vocabulary's (labels.py).
SYNONYMS: Final = ALIASES
WORD_TO_EMOTION: Final = ALIAS_TO_EMOTION

# A negator cancels a mention up to this many words later in the same clause ("does not look angry").
NEGATION_WINDOW: Final = 4
NEGATORS: Final = frozenset(
    {"not", "no", "never", "neither", "nor", "without", "hardly", "barely", "lacks", "lacking", "cannot", "nothing"}
)
# Words that start a new clause: "not angry but sad" names sadness.
CLAUSE_BREAKS: Final = frozenset({"but", "however", "though", "although", "yet", "instead", "rather"})

_REFUSAL_VERBS = (
    "help|assist|identify|determine|analy[sz]e|provide|comply|make|classify|recogni[sz]e|infer|speculate|"
    "guess|tell|answer|label|judge|assess|evaluate|interpret|describe|read|detect"
)
REFUSAL_PATTERNS: Final = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bI(?:'m| am) sorry\b",
        r"\bI apologi[sz]e\b",
        rf"\bI (?:cannot|can't|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to|"
        rf"must decline to|do not|don't) (?:\w+ )?(?:{_REFUSAL_VERBS})\b",
        rf"\bunable to (?:{_REFUSAL_VERBS})\b",
        r"\bI (?:must|have to) decline\b",
        r"\bI(?:'m| am) not (?:able|comfortable|allowed|permitted)\b",
        r"\bas an AI\b",
        r"\bagainst (?:my|our|the) (?:guidelines|policy|policies|usage policies)\b",
    )
)

_CLAUSE_SPLIT = re.compile(r"[.,;:!?()\[\]{}\n\"]+")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Parsed:
    """A reading: ``outcome`` is a label of the closed set or a non-answer; ``reason`` says why."""

    outcome: str
    reason: str


def is_refusal(text: str) -> bool:
    """Whether the text reads as a refusal to answer (apologies, "I can't identify ...", policy talk)."""
    normalised = _normalise(text)
    return any(pattern.search(normalised) for pattern in REFUSAL_PATTERNS)


def mentioned_emotions(text: str) -> list[str]:
    """Canonical emotions named in the text and not negated, in order of first mention."""
    found: list[str] = []
    for clause in _CLAUSE_SPLIT.split(_normalise(text).lower()):
        last_negator = None
        for position, word in enumerate(_WORD.findall(clause)):
            if word in CLAUSE_BREAKS:
                last_negator = None
            elif word in NEGATORS or word.endswith("n't"):
                last_negator = position
            elif word in WORD_TO_EMOTION:
                negated = last_negator is not None and position - last_negator <= NEGATION_WINDOW
                emotion = WORD_TO_EMOTION[word]
                if not negated and emotion not in found:
                    found.append(emotion)
    return found


def parse_text(text: str | None, labels: Sequence[str]) -> Parsed:
    """Free text -> one label of ``labels``, ``refused`` or ``unparseable``; never a guess."""
    _check_labels(labels)
    if text is None or not text.strip():
        return Parsed("unparseable", "empty answer")
    if is_refusal(text):
        return Parsed("refused", "refusal phrasing")
    named = mentioned_emotions(text)
    if not named:
        return Parsed("unparseable", "names no emotion")
    if len(named) > 1:
        return Parsed("unparseable", f"names several emotions ({', '.join(named)})")
    if named[0] not in labels:
        return Parsed("unparseable", f"names {named[0]}, which is not in the label set")
    return Parsed(named[0], "free text")


def parse_choice(value: str | None, labels: Sequence[str]) -> Parsed:
    """A constrained answer (an enum value): the label itself, else read strictly as free text."""
    _check_labels(labels)
    if isinstance(value, str) and value.strip().lower() in labels:
        return Parsed(value.strip().lower(), "structured")
    return parse_text(value if isinstance(value, str) else None, labels)


def parse_json_answer(content: str | None, labels: Sequence[str], *, field: str = "emotion") -> Parsed:
    """Content that should be ``{"<field>": "<label>"}``; text that is not JSON at all is read as free text.

    Content that starts like a JSON object but does not parse is ``unparseable`` (malformed JSON): a
    broken structured answer is not reinterpreted by guessing at its words.
    """
    if content is None or not content.strip():
        return Parsed("unparseable", "empty answer")
    body = _strip_fence(content.strip())
    if not body.startswith("{"):
        return parse_text(content, labels)
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        return Parsed("unparseable", f"malformed JSON ({error.msg} at {error.pos})")
    if not isinstance(document, dict) or not isinstance(document.get(field), str):
        return Parsed("unparseable", f"JSON without a string '{field}'")
    return parse_choice(document[field], labels)


def _strip_fence(text: str) -> str:
    """Models sometimes wrap JSON in a Markdown code fence."""
    match = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL | re.IGNORECASE)
    return match.group(1) if match else text


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _check_labels(labels: Sequence[str]) -> None:
    unknown = [label for label in labels if label not in EMOTIONS]
    if unknown or not labels:
        raise ValueError(f"labels must be canonical emotions ({', '.join(EMOTIONS)}); got {list(labels)}")
