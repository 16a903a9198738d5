"""The simulated world: who is photographed, and how the simulated model answers for each group.

A face of group g with true emotion e is answered correctly with probability ``recall`` (or the
group's ``accuracy``); a wrong answer is a named confusion (``"anger->disgust"``: an absolute rate), a
non-answer (``refused``), or else spread evenly over the other emotions not named. Repeated subjects
add a person effect: each person's answers share a random intercept u ~ N(0, person_sd) on the logit
scale of being correct, with the intercept per cell solved so the *marginal* rate stays the stated one
(the truth a reader is told stays exact; only the clustering changes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

REFUSED = "refused"


@dataclass(frozen=True, kw_only=True)
class Group:
    """One demographic group (or intersection cell) and the simulated model's behaviour on it."""

    values: Mapping[str, str]  # attribute -> value, e.g. {"race": "B", "gender": "female"}
    share: float = 1.0  # faces = round(share * n), n the scenario's size per group
    mix: Mapping[str, float] | None = None  # emotion mix; None: equal over the scenario's emotions
    accuracy: float = 0.7  # P(correct) for every emotion not listed in ``recall``
    recall: Mapping[str, float] = field(default_factory=dict)
    confusion: Mapping[str, float] = field(default_factory=dict)  # "true->wrong": P(pred=wrong | true)
    non_answer: float = 0.0  # P(refused) for every true emotion

    def size(self, n: int) -> int:
        return max(1, round(self.share * n))


@dataclass(frozen=True)
class Faces:
    """The fixed part of one world at one size: every face's group, true emotion and person."""

    group: np.ndarray  # index into the scenario's groups
    emotion: np.ndarray  # index into the scenario's emotions
    subject: np.ndarray  # global person index


def lay_out(groups: tuple[Group, ...], emotions: tuple[str, ...], n: int, images_per_subject: int) -> Faces:
    """Faces per group and emotion (largest-remainder rounding of the mix), grouped into persons.

    Persons are filled emotion-cyclically, so a person with 21 images of 7 emotions shows each three
    times, as in posed sets where every sitter shows every expression.
    """
    group_idx, emotion_idx, subject_idx = [], [], []
    next_subject = 0
    for g, group in enumerate(groups):
        size = group.size(n)
        weights = np.array([(group.mix or {}).get(e, 0.0) if group.mix else 1.0 for e in emotions], dtype=float)
        counts = _largest_remainder(weights / weights.sum(), size)
        # Interleave emotions so that consecutive faces (one person's images) cover every emotion.
        order = np.concatenate([np.flatnonzero(counts > k) for k in range(int(counts.max()))])
        emotion_idx.append(order)
        group_idx.append(np.full(size, g))
        subject_idx.append(next_subject + np.arange(size) // images_per_subject)
        next_subject += math.ceil(size / images_per_subject)
    return Faces(np.concatenate(group_idx), np.concatenate(emotion_idx), np.concatenate(subject_idx))


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    exact = shares * total
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]] += 1
    return counts


def outcome_labels(groups: tuple[Group, ...], emotions: tuple[str, ...]) -> tuple[str, ...]:
    named = {pair.split("->")[1] for g in groups for pair in g.confusion}
    extra = sorted(named - set(emotions))
    return (*emotions, *extra, REFUSED)


def wrong_distribution(group: Group, emotion: str, emotions: tuple[str, ...], labels: tuple[str, ...]) -> np.ndarray:
    """P(outcome | true=emotion, wrong) over ``labels``; raises ValueError on an impossible row."""
    correct = group.recall.get(emotion, group.accuracy)
    row = np.zeros(len(labels))
    for pair, rate in group.confusion.items():
        true, wrong = pair.split("->")
        if true == emotion:
            row[labels.index(wrong)] += rate
    row[labels.index(REFUSED)] += group.non_answer
    leftover = 1.0 - correct - row.sum()
    named = {p.split("->")[1] for p in group.confusion if p.split("->")[0] == emotion}
    spill = [labels.index(e) for e in emotions if e != emotion and e not in named]
    if leftover < -1e-12 or (leftover > 1e-12 and not spill):
        raise ValueError(f"group {dict(group.values)}, emotion {emotion}: answer probabilities do not sum to 1")
    if spill:
        row[spill] += max(leftover, 0.0) / len(spill)
    wrong = 1.0 - correct
    return row / wrong if wrong > 0 else row


def marginal_intercept(p: float, sd: float) -> float:
    """The logit intercept b with E[expit(b + u)] = p for u ~ N(0, sd) (Gauss-Hermite quadrature)."""
    if sd == 0.0 or p in (0.0, 1.0):
        return float(logit(p))
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()
    return brentq(lambda b: float(weights @ expit(b + sd * nodes)) - p, -40.0, 40.0, xtol=1e-12)


@dataclass(frozen=True)
class Answerer:
    """Draws one simulated model's answers for a fixed set of faces."""

    labels: tuple[str, ...]
    intercept: np.ndarray  # (G, E) logit of P(correct) given a person effect of 0
    wrong_cdf: np.ndarray  # (G, E, L) cumulative P(outcome | wrong)
    person_sd: float

    @classmethod
    def build(cls, groups: tuple[Group, ...], emotions: tuple[str, ...], person_sd: float) -> Answerer:
        labels = outcome_labels(groups, emotions)
        intercept = np.array(
            [[marginal_intercept(g.recall.get(e, g.accuracy), person_sd) for e in emotions] for g in groups]
        )
        wrong = np.array([[wrong_distribution(g, e, emotions, labels) for e in emotions] for g in groups])
        return cls(labels, intercept, np.cumsum(wrong, axis=2), person_sd)

    def answer(self, faces: Faces, rng: np.random.Generator) -> np.ndarray:
        """One predicted label (or ``refused``) per face; persons are drawn afresh each call."""
        person = rng.normal(0.0, self.person_sd, faces.subject.max() + 1) if self.person_sd else 0.0
        shift = person[faces.subject] if self.person_sd else 0.0
        correct = rng.random(len(faces.group)) < expit(self.intercept[faces.group, faces.emotion] + shift)
        cdf = self.wrong_cdf[faces.group, faces.emotion]
        wrong = (rng.random(len(faces.group))[:, None] > cdf).sum(axis=1).clip(max=len(self.labels) - 1)
        labels = np.asarray(self.labels, dtype=object)
        true_labels = labels[faces.emotion]  # the scenario's emotions come first in ``labels``
        return np.where(correct, true_labels, labels[wrong])
