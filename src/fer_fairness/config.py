"""thresholds.toml: a declarative schema, validated on load.

Every mistake ends the run with one line naming the file, the dotted key, what is allowed and what
was given. Nothing falls back silently: a key that is absent takes the documented default below,
a key that is present must be valid.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fer_fairness import perturb
from fer_fairness.criteria.catalogue import BUILTIN, Criterion
from fer_fairness.errors import ConfigError
from fer_fairness.labels import EMOTIONS

Mode = Literal["harm", "equivalence"]
Correction = Literal["holm", "bh"]

# The built-in criteria's names, in the policy's order (each is defined once, in criteria/catalogue.py).
CRITERIA = tuple(c.name for c in BUILTIN)


@dataclass(frozen=True)
class _Rule:
    """One allowed value shape: a check and the words that describe it in an error."""

    allowed: str
    check: Callable[[Any], bool]
    default: Any


def _number(low: float, high: float, *, low_open: bool = False, high_open: bool = False, default: float) -> _Rule:
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    left, right = "(" if low_open else "[", ")" if high_open else "]"
    return _Rule(f"a number in {left}{low:g}, {high:g}{right}", check, default)


def _integer(low: int, high: int, *, default: int) -> _Rule:
    return _Rule(
        f"an integer in [{low}, {high}]",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
        default,
    )


def _choice(*options: str, default: str) -> _Rule:
    return _Rule("one of " + ", ".join(f'"{o}"' for o in options), lambda v: v in options, default)


def _text(default: str = "") -> _Rule:
    return _Rule("a string", lambda v: isinstance(v, str), default)


def _boolean(default: bool) -> _Rule:
    return _Rule("true or false", lambda v: isinstance(v, bool), default)


def _distinct_names(value: Any, *, minimum: int = 1) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= minimum
        and all(isinstance(x, str) and x for x in value)
        and len(set(value)) == len(value)
    )


def _names_or(keyword: str, default: Any) -> _Rule:
    return _Rule(
        f'"{keyword}" or a non-empty list of distinct names',
        lambda v: v == keyword or _distinct_names(v),
        default,
    )


def _intersections(default: Any) -> _Rule:
    def check(value: Any) -> bool:
        if value in ("none", "all-pairs"):
            return True
        return isinstance(value, list) and len(value) > 0 and all(_distinct_names(x, minimum=2) for x in value)

    return _Rule(
        '"none", "all-pairs" or a non-empty list of lists of two or more distinct attributes, '
        'such as [["race", "gender"]]',
        check,
        default,
    )


def _pairs(default: Any) -> _Rule:
    def pair(text: Any) -> bool:
        if not isinstance(text, str) or text.count("->") != 1:
            return False
        true, wrong = text.split("->")
        return true in EMOTIONS and wrong in EMOTIONS and true != wrong

    def check(value: Any) -> bool:
        return value == "all" or (_distinct_names(value) and all(pair(x) for x in value))

    return _Rule(
        '"all" or a non-empty list of "true->wrong" pairs of two different emotions '
        f'({", ".join(EMOTIONS)}), such as ["anger->disgust"]',
        check,
        default,
    )


_SETTINGS: dict[str, _Rule] = {
    "alpha": _number(0, 0.5, low_open=True, default=0.05),
    "correction": _choice("holm", "bh", default="holm"),
    "family": _choice("gate", "criterion", "run", default="gate"),
    "mode": _choice("harm", "equivalence", default="harm"),
    "power": _number(0.5, 1, high_open=True, default=0.8),
    "min_group_size": _integer(1, 1_000_000, default=30),
    "inconclusive": _choice("skip", "fail", default="skip"),
    "comparisons": _choice("reference", "all-pairs", default="reference"),
    "max_not_evaluated": _number(0, 1, default=0.01),
}

_GROUPS: dict[str, _Rule] = {
    "attributes": _names_or("all", "all"),
    "intersections": _intersections("all-pairs"),
    "intersection_comparisons": _choice("like-with-like", "one-reference", default="like-with-like"),
}

_COMMON = {"enabled": _boolean(True), "owner": _text(), "rationale": _text()}
# Further keys a criterion may declare (Criterion.options), each with its rule.
_OPTIONS: dict[str, _Rule] = {
    "pairs": _pairs("all"),
    # robustness_gap's sweep; empty (the default) means no perturbed predictions, so no extra model calls
    "perturbations": _Rule(perturb.ALLOWED, perturb.valid_sweep, []),
}


def _rules(criterion: Criterion) -> dict[str, _Rule]:
    """A criterion's thresholds keys: the common ones, its band's key, and the options it declares."""
    b = criterion.threshold
    band = _number(b.low, b.high, low_open=b.low_open, high_open=b.high_open, default=b.default)
    return {**_COMMON, b.key: band, **{key: _OPTIONS[key] for key in criterion.options}}


@dataclass(frozen=True, kw_only=True)
class CriterionConfig:
    """Per-criterion policy: the band (tolerance, or minimum for the floor) and its provenance."""

    name: str
    enabled: bool
    threshold: float
    owner: str = ""
    rationale: str = ""
    pairs: tuple[tuple[str, str], ...] | None = None  # confusion_ratio only; None means all
    perturbations: tuple[str, ...] = ()  # robustness_gap only: canonical "kind:level" names (perturb.py)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """The whole validated policy."""

    source: str
    digest: str
    alpha: float
    correction: Correction
    family: Literal["gate", "criterion", "run"]
    mode: Mode
    power: float
    min_group_size: int
    inconclusive: Literal["skip", "fail"]
    comparisons: Literal["reference", "all-pairs"]
    max_not_evaluated: float  # share of samples left without an answer (transport failures) that stops the run
    attributes: tuple[str, ...] | None  # None: every attribute of each dataset
    intersections: Literal["none", "all-pairs"] | tuple[tuple[str, ...], ...]
    # like-with-like: a cell vs the cell differing in one attribute, set to its reference; one-reference: vs one cell
    intersection_comparisons: Literal["like-with-like", "one-reference"]
    reference: Mapping[str, str] = field(default_factory=dict)
    criteria: Mapping[str, CriterionConfig] = field(default_factory=dict)
    # Every criterion this run knows, built-in and added, in order (name -> definition).
    definitions: Mapping[str, Criterion] = field(default_factory=lambda: {c.name: c for c in BUILTIN})

    def criterion(self, name: str) -> CriterionConfig:
        return self.criteria[name]

    def enabled(self) -> list[Criterion]:
        """The definitions of the enabled criteria, in order."""
        return [c for name, c in self.definitions.items() if self.criteria[name].enabled]


def _fail(source: str, key: str, allowed: str, given: Any) -> ConfigError:
    return ConfigError(f"{source}: '{key}' must be {allowed}; got {given!r}")


def _read_table(table: Any, rules: Mapping[str, _Rule], *, source: str, prefix: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(source, prefix.rstrip("."), "a table", table)
    for key in table:
        if key not in rules:
            raise _fail(source, prefix + key, "one of the known keys (" + ", ".join(rules) + ")", key)
    values = {}
    for key, rule in rules.items():
        if key in table:
            if not rule.check(table[key]):
                raise _fail(source, prefix + key, rule.allowed, table[key])
            values[key] = table[key]
        else:
            values[key] = rule.default
    return values


def parse_thresholds(
    document: Mapping[str, Any], *, source: str, digest: str = "", criteria: Sequence[Criterion] = BUILTIN
) -> Thresholds:
    """Validate a parsed TOML document into Thresholds (``source`` names the file in messages).

    ``criteria`` are the criteria the run knows (the built-in ones, plus any a conftest or package adds).
    """
    definitions = {c.name: c for c in criteria}
    sections = {"settings", "groups", "reference", "criteria"}
    for key in document:
        if key not in sections:
            raise _fail(source, key, "one of the sections [" + "], [".join(sorted(sections)) + "]", key)
    settings = _read_table(document.get("settings", {}), _SETTINGS, source=source, prefix="settings.")
    groups = _read_table(document.get("groups", {}), _GROUPS, source=source, prefix="groups.")

    reference = document.get("reference", {})
    if not isinstance(reference, dict):
        raise _fail(source, "reference", "a table of attribute = group", reference)
    for key, value in reference.items():
        if not isinstance(value, str) or not value:
            raise _fail(source, f"reference.{key}", "a group name (string)", value)

    raw_criteria = document.get("criteria", {})
    if not isinstance(raw_criteria, dict):
        raise _fail(source, "criteria", "a table of criteria", raw_criteria)
    criteria = {}
    for name in raw_criteria:
        if name not in definitions:
            raise _fail(source, f"criteria.{name}", "one of the criteria (" + ", ".join(definitions) + ")", name)
    for name, definition in definitions.items():
        values = _read_table(raw_criteria.get(name, {}), _rules(definition), source=source, prefix=f"criteria.{name}.")
        pairs = values.get("pairs")
        criteria[name] = CriterionConfig(
            name=name,
            enabled=values["enabled"],
            threshold=float(values.get("tolerance", values.get("minimum"))),
            owner=values["owner"],
            rationale=values["rationale"],
            pairs=None if pairs in (None, "all") else tuple(tuple(p.split("->")) for p in pairs),
            perturbations=tuple(perturb.parse(p).name for p in values.get("perturbations", ())),
        )

    attributes = groups["attributes"]
    intersections = groups["intersections"]
    return Thresholds(
        source=source,
        digest=digest,
        attributes=None if attributes == "all" else tuple(attributes),
        intersections=intersections if isinstance(intersections, str) else tuple(map(tuple, intersections)),
        intersection_comparisons=groups["intersection_comparisons"],
        reference=dict(reference),
        criteria=criteria,
        definitions=definitions,
        **settings,
    )


def load_thresholds(path: Path | None, *, criteria: Sequence[Criterion] = BUILTIN) -> Thresholds:
    """Load and validate a thresholds file; ``None`` gives the built-in defaults."""
    if path is None:
        return parse_thresholds(
            {}, source="built-in defaults", digest=hashlib.sha256(b"").hexdigest()[:16], criteria=criteria
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the thresholds file ({exc.strerror})") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_thresholds(document, source=str(path), digest=hashlib.sha256(data).hexdigest()[:16], criteria=criteria)
