"""The verdict record: one per fairness test, serialisable, the unit of every report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from fer_fairness.criteria.verdict import Verdict


def _json_number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: NaN (undefined) becomes null, +-inf the strings "inf"/"-inf"."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


@dataclass(frozen=True, kw_only=True)
class Record:
    """Everything a report needs about one test: what was compared, the numbers, the verdict, why."""

    test_id: str
    criterion: str
    model: str
    dataset: str
    attribute: str
    group: str
    reference: str | None
    detail: str | None
    metric: str
    verdict: Verdict
    rule: str  # verdict.Rule: which rule decided (outside, inside, powered, overlap, undefined)
    mode: str
    inconclusive: str  # "skip" or "fail": what an INCONCLUSIVE verdict does to the test
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float | None
    p_value: float | None
    p_adjusted: float | None
    test_method: str
    threshold: str
    band_low: float | None
    band_high: float | None
    n: dict[str, int]
    null: float | None = None  # the no-disparity value (0 for differences, 1 for ratios)
    confidence_nominal: float | None = None  # the corrected level asked for; `confidence` may be higher
    inference: str = "independent images"  # or clustered by subject, with the design effects
    rates: dict[str, float] = field(default_factory=dict)
    count_ratio: float | None = None
    power: float | None = None
    required_n: float | None = None
    family: str = ""
    family_size: int = 0
    owner: str = ""
    rationale: str = ""
    note: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN becomes null, infinities "inf" / "-inf"."""
        # Field by field, not dataclasses.asdict: its deep copy was a tenth of a 16k-test run, and the
        # only containers (n, rates) hold numbers, so copying them is enough.
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        out["n"] = dict(self.n)
        out["verdict"] = str(self.verdict)
        out["rule"] = str(self.rule)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = _json_number(value)
        out["rates"] = {k: _json_number(v) for k, v in self.rates.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Inverse of to_dict (extra keys such as a report's nodeid are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: _from_json(v) for k, v in data.items() if k in names}
        values["rates"] = {k: _from_json(v) for k, v in data.get("rates", {}).items()}
        values["verdict"] = Verdict(values["verdict"])
        return cls(**values)

    def junit_properties(self) -> list[tuple[str, str]]:
        """The per-test properties written into JUnit XML."""
        props = [(f"n[{group}]", str(count)) for group, count in self.n.items()]
        props += [
            ("criterion", self.criterion),
            ("metric", self.metric),
            ("estimate", _fmt(self.estimate)),
            ("ci_low", _fmt(self.ci_low)),
            ("ci_high", _fmt(self.ci_high)),
            ("confidence", _fmt(self.confidence)),
            ("p", _fmt(self.p_value)),
            ("p_adjusted", _fmt(self.p_adjusted)),
            ("threshold", self.threshold),
            ("verdict", str(self.verdict)),
            ("rule", self.rule),
            ("inference", self.inference),
        ]
        if self.count_ratio is not None:
            props.append(("count_ratio", _fmt(self.count_ratio)))
        return props


_FIELD_NAMES = tuple(f.name for f in fields(Record))


def _from_json(value: Any) -> Any:
    return float(value) if value in ("inf", "-inf") else value


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.6g}"


@dataclass(frozen=True, kw_only=True)
class Planned:
    """A fairness test known before any model is asked: what its record will be about, and its id.

    Test ids depend on the datasets (groups, emotions) and the policy, never on predictions, so
    collection needs only the datasets; the record is looked up by (criterion, test_id) when the
    test runs, after the selected models have predicted.
    """

    test_id: str
    criterion: str
    model: str
    dataset: str
    attribute: str
    group: str
    reference: str | None
    detail: str | None
