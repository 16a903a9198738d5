"""The scenarios: simulated worlds with a known truth, and the promise each verdict makes in them.

Each Scenario is data: its groups (how the simulated model treats each), the policy it runs under
(thresholds.toml keys), the group sizes swept, and Checks (rows of the table): which verdict event
is counted and the promise it is held to. The per-criterion matrix (no disparity / disparity exactly
at the band's edge / a planted disparity twice the tolerance) is built by ``_matrix`` below; the
scenarios the issue names follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulations.population import Group

ALPHA = 0.05  # the default policy's alpha and power, which every promise below is stated against
POWER = 0.8
BASIC_SEVEN = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
THREE = ("anger", "disgust", "fear")
SIZES = (30, 100, 300, 1000, 3000, 10000)
QUICK_SIZES = (30, 300, 1000)


@dataclass(frozen=True, kw_only=True)
class Check:
    """One row per size: which verdict event is counted in each simulation, and its promise."""

    label: str  # what the rate means, e.g. "false FAIL at the band's edge"
    event: str  # "FAIL" / "PASS": any counted record has that verdict; "settled": PASS or FAIL after follow-up
    promise: float | None  # None: measured and reported, no promise
    at_most: bool = True  # the promise bounds the rate from above (False: from below)
    group: str | None = None  # count only records of this group (default: every record of the criterion)
    detail: str | None = None  # count only records of this detail (emotion, "true->wrong" pair)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A simulated world and the policy it is judged under."""

    name: str
    truth: str  # one line: what is true in this world
    criterion: str | None  # the one criterion enabled; None: every criterion of the policy
    groups: tuple[Group, ...]
    emotions: tuple[str, ...] = THREE
    policy: Mapping[str, Any] = field(default_factory=dict)  # thresholds.toml sections
    sizes: tuple[int, ...] = SIZES  # n per group (each Group scales it by its share)
    quick_sizes: tuple[int, ...] = QUICK_SIZES
    sims: int = 200
    quick_sims: int = 30
    images_per_subject: int = 1
    person_sd: float = 0.0
    follow_up: bool = False  # re-simulate each INCONCLUSIVE record at its required_n (the "settles" check)
    checks: tuple[Check, ...] = ()

    @property
    def mode(self) -> str:
        return self.policy.get("settings", {}).get("mode", "harm")


def _two(a: Mapping[str, Any], b: Mapping[str, Any], attribute: str = "race") -> tuple[Group, ...]:
    return (Group(values={attribute: "A"}, **a), Group(values={attribute: "B"}, **b))


MIX_A = {"anger": 0.6, "disgust": 0.2, "fear": 0.2}
MIX_B = {"anger": 0.2, "disgust": 0.2, "fear": 0.6}
MIX_C = {"anger": 0.2, "disgust": 0.6, "fear": 0.2}
RECALL = {"anger": 0.8, "disgust": 0.7, "fear": 0.6}


def _shifted(recall: Mapping[str, float], by: float) -> dict[str, float]:
    return {e: r - by for e, r in recall.items()}


# For each criterion: the groups at disparity multiple d (0: none, 1: exactly at the band's edge,
# 2: twice the tolerance), and the record an edge check counts (group, detail).
WORLDS: dict[str, tuple[Callable[[float], tuple[Group, ...]], dict[str, str]]] = {
    "accuracy_gap": (lambda d: _two({"accuracy": 0.70}, {"accuracy": 0.70 - 0.05 * d}), {}),
    "accuracy_gap_stratified": (
        # Emotion mixes differ, so raw accuracy is confounded; within every emotion the gap is 0.05 d.
        lambda d: _two({"recall": RECALL, "mix": MIX_A}, {"recall": _shifted(RECALL, 0.05 * d), "mix": MIX_B}),
        {},
    ),
    "recall_gap": (lambda d: _two({}, {"recall": {"anger": 0.70 - 0.10 * d}}), {"detail": "anger"}),
    "confusion_ratio": (
        lambda d: _two({"confusion": {"anger->disgust": 0.10}}, {"confusion": {"anger->disgust": 0.10 * 1.5**d}}),
        {"detail": "anger->disgust"},
    ),
    "non_answer_gap": (lambda d: _two({"non_answer": 0.03}, {"non_answer": 0.03 + 0.02 * d}), {}),
    # The floor has no "no disparity" world; d = 0 is a group well above it (0.7 vs a floor of 0.5).
    "accuracy_floor": (
        lambda d: _two({"accuracy": 0.70}, {"accuracy": 0.70 if d == 0 else 0.60 - 0.10 * d}),
        {"group": "B"},
    ),
    "association": (
        lambda d: tuple(Group(values={"race": g}, accuracy=0.70 - 0.05 * d * k) for k, g in enumerate("ABC")),
        {},
    ),
    "association_stratified": (
        lambda d: tuple(
            Group(values={"race": g}, recall=_shifted(RECALL, 0.05 * d * k), mix=mix)
            for k, (g, mix) in enumerate(zip("ABC", (MIX_A, MIX_B, MIX_C), strict=True))
        ),
        {},
    ),
}

TRUTH = {
    "accuracy_gap": "accuracy 0.70 vs 0.70 - 0.05 d (tolerance 0.05)",
    "accuracy_gap_stratified": "recall 0.8/0.7/0.6 vs each - 0.05 d, mixes 60/20/20 vs 20/20/60 (tolerance 0.05)",
    "recall_gap": "anger recall 0.70 vs 0.70 - 0.10 d, other emotions equal (tolerance 0.10)",
    "confusion_ratio": "P(disgust | anger) 0.10 vs 0.10 x 1.5^d (band [1/1.5, 1.5])",
    "non_answer_gap": "refusal rate 0.03 vs 0.03 + 0.02 d (tolerance 0.02)",
    "accuracy_floor": "accuracy 0.70 vs 0.70 (d = 0), 0.50 (d = 1: at the floor 0.5), 0.40 (d = 2)",
    "association": "3 groups, accuracy 0.70, 0.70 - 0.05 d, 0.70 - 0.10 d: spread 0.10 d (tolerance 0.10)",
    "association_stratified": "3 groups, recall shifted 0, 0.05 d, 0.10 d, different emotion mixes (tolerance 0.10)",
}


def _policy(criterion: str, mode: str = "harm", **criterion_keys: Any) -> dict[str, Any]:
    return {"settings": {"mode": mode}, "criteria": {criterion: dict(criterion_keys)} if criterion_keys else {}}


def _edge_checks(target: Mapping[str, str], mode: str) -> tuple[Check, ...]:
    if mode == "equivalence":
        # PASS needs the whole (1 - alpha) interval inside the band: one-sided alpha/2 at the edge.
        return (Check(label="false PASS at the band's edge", event="PASS", promise=ALPHA / 2, **target),)
    return (
        # FAIL needs the whole interval beyond the edge: a one-sided alpha/2 test at the edge.
        Check(label="false FAIL at the band's edge", event="FAIL", promise=ALPHA / 2, **target),
        # PASS by power needs a non-significant result, which at the edge happens at most 1 - power.
        Check(label="PASS at the band's edge", event="PASS", promise=1 - POWER, **target),
    )


def _matrix(criterion: str, *, name: str = "", truth: str = "", worlds=None, pairs=None) -> list[Scenario]:
    build, target = worlds or WORLDS[criterion]
    name = name or criterion
    keys = {"pairs": pairs} if pairs else {}
    return [
        Scenario(
            name=f"{name}/none",
            truth=(truth or TRUTH[criterion]) + "; here d = 0 (no disparity)",
            criterion=criterion,
            groups=build(0),
            policy=_policy(criterion, **keys),
            checks=(Check(label="any false FAIL (family-wise)", event="FAIL", promise=ALPHA),),
        ),
        Scenario(
            name=f"{name}/edge",
            truth=(truth or TRUTH[criterion]) + "; here d = 1 (at the edge)",
            criterion=criterion,
            groups=build(1),
            policy=_policy(criterion, **keys),
            checks=_edge_checks(target, "harm"),
        ),
        Scenario(
            name=f"{name}/edge-equivalence",
            truth=(truth or TRUTH[criterion]) + "; here d = 1 (at the edge)",
            criterion=criterion,
            groups=build(1),
            policy=_policy(criterion, "equivalence", **keys),
            checks=_edge_checks(target, "equivalence"),
        ),
        Scenario(
            name=f"{name}/planted",
            truth=(truth or TRUTH[criterion]) + "; here d = 2 (planted)",
            criterion=criterion,
            groups=build(2),
            policy=_policy(criterion, **keys),
            checks=(Check(label="detection (FAIL)", event="FAIL", promise=None, **target),),
        ),
    ]


def _rare(rate: float) -> tuple[Callable[[float], tuple[Group, ...]], dict[str, str]]:
    return (
        lambda d: _two({"confusion": {"anger->disgust": rate}}, {"confusion": {"anger->disgust": rate * 1.5**d}}),
        {"detail": "anger->disgust"},
    )


def _repeated(criterion: str, groups: tuple[Group, ...], mode: str, check: Check, truth: str, name: str) -> Scenario:
    return Scenario(
        name=name,
        truth=truth + "; 30 people per group x 21 images (3 per emotion), person effect sd 1 (logit)",
        criterion=criterion,
        groups=groups,
        emotions=BASIC_SEVEN,
        policy=_policy(criterion, mode),
        sizes=(630,),
        quick_sizes=(630,),
        images_per_subject=21,
        person_sd=1.0,
        checks=(check,),
    )


_SMALL_RATES = {  # 6-10% confusions between three emotions; recall is what is left
    "anger->disgust": 0.10,
    "anger->fear": 0.06,
    "disgust->anger": 0.08,
    "disgust->fear": 0.07,
    "fear->anger": 0.06,
    "fear->disgust": 0.09,
}
_SMALL_RECALL = {e: 1 - sum(r for p, r in _SMALL_RATES.items() if p.startswith(e + "->")) for e in THREE}
_CELLS = [(r, g) for r in ("W", "B", "A", "L") for g in ("female", "male")]

SPECIAL: list[Scenario] = [
    _repeated(
        "accuracy_gap",
        _two({}, {}),
        "harm",
        Check(label="any false FAIL (family-wise)", event="FAIL", promise=ALPHA),
        "accuracy 0.70 in both groups",
        "repeated-subjects/accuracy_gap/none",
    ),
    _repeated(
        "recall_gap",
        _two({}, {}),
        "harm",
        Check(label="any false FAIL (family-wise)", event="FAIL", promise=ALPHA),
        "recall 0.70 for every emotion in both groups",
        "repeated-subjects/recall_gap/none",
    ),
    _repeated(
        "accuracy_gap",
        _two({"accuracy": 0.70}, {"accuracy": 0.65}),
        "equivalence",
        Check(label="false PASS at the band's edge", event="PASS", promise=ALPHA / 2),
        "accuracy 0.70 vs 0.65 (at the edge of tolerance 0.05)",
        "repeated-subjects/accuracy_gap/edge-equivalence",
    ),
    Scenario(
        name="large/accuracy_gap/inside",
        truth="accuracy 0.70 vs 0.67: a gap of 0.03, inside the tolerance 0.05",
        criterion="accuracy_gap",
        groups=_two({"accuracy": 0.70}, {"accuracy": 0.67}),
        policy=_policy("accuracy_gap"),
        sizes=(20000,),
        quick_sizes=(20000,),
        sims=100,
        quick_sims=10,
        checks=(Check(label="false FAIL inside the band", event="FAIL", promise=ALPHA / 2),),
    ),
    Scenario(
        name="large/accuracy_gap/edge",
        truth="accuracy 0.70 vs 0.65: exactly at the tolerance 0.05",
        criterion="accuracy_gap",
        groups=_two({"accuracy": 0.70}, {"accuracy": 0.65}),
        policy=_policy("accuracy_gap"),
        sizes=(20000,),
        quick_sizes=(20000,),
        sims=100,
        quick_sims=10,
        checks=_edge_checks({}, "harm"),
    ),
    Scenario(
        name="beyond/accuracy_gap",
        truth="accuracy 0.70 vs 0.64: a gap of 0.06, 20% beyond the tolerance 0.05",
        criterion="accuracy_gap",
        groups=_two({"accuracy": 0.70}, {"accuracy": 0.64}),
        policy=_policy("accuracy_gap"),
        sizes=(3000,),
        quick_sizes=(3000,),
        quick_sims=20,
        checks=(Check(label="false PASS beyond the edge", event="PASS", promise=1 - POWER),),
    ),
    Scenario(
        name="small-rates/confusion_ratio/none",
        truth="all six confusions of three emotions at 6-10%, equal in both groups; 84 vs 408 faces",
        criterion="confusion_ratio",
        groups=(
            Group(values={"race": "A"}, recall=_SMALL_RECALL, confusion=_SMALL_RATES),
            Group(values={"race": "B"}, recall=_SMALL_RECALL, confusion=_SMALL_RATES, share=84 / 408),
        ),
        policy=_policy("confusion_ratio"),
        sizes=(408,),
        quick_sizes=(408,),
        checks=(Check(label="any false FAIL (family-wise)", event="FAIL", promise=ALPHA),),
    ),
    Scenario(
        name="cells/association/none-equivalence",
        truth="accuracy 0.70 in all 8 race x gender cells of 42 faces",
        criterion="association",
        groups=tuple(Group(values={"race": r, "gender": g}) for r, g in _CELLS),
        policy=_policy("association", "equivalence"),
        sizes=(42,),
        quick_sizes=(42,),
        checks=(Check(label="any false FAIL (family-wise)", event="FAIL", promise=ALPHA),),
    ),
    Scenario(
        name="gate/default-policy/fair",
        truth="a fair model (accuracy 0.70, refusals 0.02, same everywhere), 3 races x 2 genders, "
        "100 faces per cell, 7 emotions; every criterion, default policy",
        criterion=None,
        groups=tuple(
            Group(values={"race": r, "gender": g}, non_answer=0.02) for r in ("W", "B", "A") for g in ("female", "male")
        ),
        emotions=BASIC_SEVEN,
        sizes=(100,),
        quick_sizes=(100,),
        quick_sims=20,
        # The default family ("gate") shares alpha over every criterion: any FAIL in the run <= alpha.
        checks=(Check(label="any false FAIL in the run", event="FAIL", promise=ALPHA),),
    ),
    Scenario(
        name="settles/accuracy_gap/none",
        truth="accuracy 0.70 in both groups; each INCONCLUSIVE at n re-run at its required_n",
        criterion="accuracy_gap",
        groups=_two({}, {}),
        policy=_policy("accuracy_gap"),
        sizes=(100,),
        quick_sizes=(100,),
        quick_sims=20,
        follow_up=True,
        # The stated n assumes the rates are as observed; re-run here at the TRUE rates, the observed
        # rates' own noise shows (reported). The promise itself, at the observed rates, is tested in
        # tests/criteria/test_required_n.py.
        checks=(Check(label="settled at required_n (true rates)", event="settled", promise=None),),
    ),
    Scenario(
        name="settles/accuracy_gap/inside",
        truth="accuracy 0.70 vs 0.68 (inside the band); each INCONCLUSIVE re-run at its required_n",
        criterion="accuracy_gap",
        groups=_two({"accuracy": 0.70}, {"accuracy": 0.68}),
        policy=_policy("accuracy_gap"),
        sizes=(100,),
        quick_sizes=(100,),
        quick_sims=20,
        follow_up=True,
        # The stated n assumes the rates are as observed; re-run here at the TRUE rates, the observed
        # rates' own noise shows (reported). The promise itself, at the observed rates, is tested in
        # tests/criteria/test_required_n.py.
        checks=(Check(label="settled at required_n (true rates)", event="settled", promise=None),),
    ),
]

SCENARIOS: list[Scenario] = [
    *(s for criterion in WORLDS for s in _matrix(criterion)),
    *(
        s
        for rate in (0.01, 0.05)
        for s in _matrix(
            "confusion_ratio",
            name=f"rare-{rate:g}/confusion_ratio",
            truth=f"P(disgust | anger) {rate:g} vs {rate:g} x 1.5^d (band [1/1.5, 1.5])",
            worlds=_rare(rate),
            pairs=["anger->disgust"],
        )
    ),
    *SPECIAL,
]


def select(scenarios: list[Scenario], only: list[str] | None) -> list[Scenario]:
    """Scenarios whose name starts with any of ``only`` (every one when None); unknown prefixes are errors."""
    if not only:
        return scenarios
    unknown = [p for p in only if not any(s.name.startswith(p) for s in scenarios)]
    if unknown:
        raise ValueError(f"--only {', '.join(unknown)}: no scenario name starts with it (see --list)")
    return [s for s in scenarios if any(s.name.startswith(p) for p in only)]
