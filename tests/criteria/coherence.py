"""A record's verdict must follow from its own printed interval, band and rule: checked from outside.

``assert_coherent`` re-derives the rule from the numbers a reader sees (estimate, interval, band,
null, power) and compares it with what the record claims, so no verdict can contradict its interval.
It takes a ``Record`` or a record dict read back from fairness.json (floats may be None, "inf", "-inf").
"""

from __future__ import annotations

import math
import re
from typing import Any

from fer_fairness.criteria.catalogue import BUILTIN

RULES = ("outside", "inside", "powered", "overlap", "undefined")
VERDICT_OF_RULE = {
    "outside": "FAIL",
    "inside": "PASS",
    "powered": "PASS",
    "overlap": "INCONCLUSIVE",
    "undefined": "INCONCLUSIVE",
}
# The no-disparity value per criterion: differences and spreads 0, ratios 1, the floor has none.
# "No disparity" by what a criterion's band is on: a difference, a ratio, or a floor (which has none).
NULLS = {"difference": 0.0, "ratio": 1.0, "floor": None}
KINDS = {c.name: c.threshold.kind for c in BUILTIN}
NUMBERS = ("estimate", "ci_low", "ci_high", "confidence", "band_low", "band_high")
_PRINTED_CI = re.compile(r"CI \[([^,\]]+), ([^\]]+)\]")
_INFERENCE = re.compile(r"independent images|clustered by subject \(design effect [0-9].*\)")


def _number(value: Any) -> Any:
    """JSON's spellings of infinity back to floats; everything else unchanged."""
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _as_dict(record: Any) -> dict[str, Any]:
    if isinstance(record, dict):
        data = dict(record)
    else:
        # Read the dataclass fields directly: to_dict() would hide a NaN as null.
        data = dict(vars(record))
        data["verdict"] = str(data["verdict"])
    return {k: _number(v) for k, v in data.items()}


def _printed(text: str) -> float:
    try:
        return float(text)  # also reads "inf" and "-inf"
    except ValueError:
        return math.nan  # "n/a": never close to a number


def _close_to_print(printed: float, value: float) -> bool:
    # Messages print 3 decimals (or 3 significant digits below 1e-3): allow that rounding, no more.
    if math.isinf(printed) or math.isinf(value):
        return printed == value
    return abs(printed - value) <= 5e-4 + 5e-3 * abs(value)


def expected_rule(r: dict[str, Any], *, target_power: float) -> str:
    """The rule the numbers imply, in the order the policy applies them (decided records only)."""
    low, high, band_low, band_high = r["ci_low"], r["ci_high"], r["band_low"], r["band_high"]
    if high < band_low or low > band_high:
        return "outside"
    if band_low <= low and high <= band_high:
        return "inside"
    null, power = r.get("null"), r.get("power")
    if (
        r["mode"] == "harm"
        and band_low <= r["estimate"] <= band_high
        and _is_number(null)
        and low <= null <= high
        and _is_number(power)
        and power >= target_power
    ):
        return "powered"
    return "overlap"


def violations(record: Any, *, target_power: float) -> list[str]:
    """Every way the record contradicts itself (empty when coherent)."""
    r = _as_dict(record)
    problems: list[str] = []
    for key in ("rule", "null", "inference", *NUMBERS):
        if key not in r:
            problems.append(f"no field {key!r}")
    if problems:
        return problems
    verdict, rule, reason = r["verdict"], r["rule"], r.get("reason") or ""
    if rule not in RULES:
        return [f"rule {rule!r} is none of {RULES}"]
    if verdict != VERDICT_OF_RULE[rule]:
        problems.append(f"verdict {verdict} under rule {rule!r} (which gives {VERDICT_OF_RULE[rule]})")

    expected_null = NULLS[KINDS[r["criterion"]]]
    if r["null"] != expected_null and not (rule == "undefined" and r["null"] is None):
        problems.append(f"null {r['null']!r}, expected {expected_null!r} for {r['criterion']}")
    if not (isinstance(r["inference"], str) and _INFERENCE.fullmatch(r["inference"])):
        problems.append(f"inference {r['inference']!r} is neither 'independent images' nor 'clustered by subject'")

    est, low, high = r["estimate"], r["ci_low"], r["ci_high"]
    if all(_is_number(v) for v in (est, low, high)):
        slack = 1e-9 * max(1.0, abs(est)) if math.isfinite(est) else 0.0
        if not low - slack <= est <= high + slack:
            problems.append(f"interval [{low!r}, {high!r}] does not contain its estimate {est!r}")
    if r["confidence"] is not None and not (_is_number(r["confidence"]) and 0 < r["confidence"] < 1):
        problems.append(f"confidence {r['confidence']!r} is not in (0, 1)")
    for key in ("p_value", "p_adjusted"):
        value = r.get(key)
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            problems.append(f"{key} {value!r} is not in [0, 1]")

    if verdict not in reason:
        problems.append(f"reason does not say {verdict}: {reason!r}")
    if rule == "undefined":
        if "not tested:" not in reason and "undefined" not in reason:
            problems.append(f"undefined, but the reason does not say it was not tested or why: {reason!r}")
        return problems

    # A decided record: every number present, none NaN, and the rule the one its numbers imply.
    for key in (*NUMBERS, "p_value", "p_adjusted"):
        if not _is_number(r.get(key)):
            problems.append(f"decided by rule {rule!r} but {key} is {r.get(key)!r}")
    nans = [k for k, v in r.items() if isinstance(v, float) and math.isnan(v)]
    nans += [f"rates[{g}]" for g, v in (r.get("rates") or {}).items() if isinstance(v, float) and math.isnan(v)]
    if nans:
        problems.append(f"decided record holds NaN in {', '.join(nans)}")
    if problems:
        return problems
    implied = expected_rule(r, target_power=target_power)
    if rule != implied:
        problems.append(
            f"rule {rule!r} but estimate {est!r}, interval [{low!r}, {high!r}], band [{r['band_low']!r}, "
            f"{r['band_high']!r}], null {r['null']!r}, power {r.get('power')!r} (target {target_power}), "
            f"mode {r['mode']} imply {implied!r}"
        )
    printed = _PRINTED_CI.search(reason)
    if printed is None:
        problems.append(f"reason prints no 'CI [low, high]': {reason!r}")
    else:
        shown = (_printed(printed.group(1)), _printed(printed.group(2)))
        if not (_close_to_print(shown[0], low) and _close_to_print(shown[1], high)):
            problems.append(f"reason prints CI {shown} but the record holds [{low!r}, {high!r}]")
    return problems


def assert_coherent(record: Any, *, target_power: float) -> None:
    """Fail, naming the test and every contradiction, unless the verdict follows from the record's numbers."""
    __tracebackhide__ = True
    problems = violations(record, target_power=target_power)
    if problems:
        r = _as_dict(record)
        name = f"{r.get('criterion')}|{r.get('test_id')} ({r.get('verdict')})"
        raise AssertionError(f"{name} is incoherent: " + "; ".join(problems))
