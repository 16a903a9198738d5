"""The simulation harness (simulations/): its simulated worlds, its runs through the product, its table.

Fast checks run in CI; the `slow` ones re-measure a promise with enough simulations to mean it.
"""

import math
import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from fer_fairness.config import load_thresholds
from simulations import harness
from simulations.__main__ import main
from simulations.harness import Measured, Simulation, policy_document, run_one, seed_of, to_toml
from simulations.population import Answerer, Group, lay_out, marginal_intercept, wrong_distribution
from simulations.scenarios import SCENARIOS, Check, Scenario, select
from simulations.table import judged, meets, render, row

THREE = ("anger", "disgust", "fear")


def _scenario(groups, *, criterion="accuracy_gap", mode="harm", checks=(), **kwargs) -> Scenario:
    return Scenario(
        name=f"test/{criterion}/{mode}",
        truth="test world",
        criterion=criterion,
        groups=groups,
        policy={"settings": {"mode": mode}},
        checks=checks or (Check(label="FAIL", event="FAIL", promise=0.05),),
        **kwargs,
    )


def _two(a: float, b: float) -> tuple[Group, ...]:
    return Group(values={"race": "A"}, accuracy=a), Group(values={"race": "B"}, accuracy=b)


# -- the simulated world -----------------------------------------------------------------------


def test_layout_gives_each_person_every_emotion_equally():
    # 30 people x 21 images of 7 emotions: each person shows each emotion exactly 3 times.
    emotions = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    faces = lay_out(_two(0.7, 0.7), emotions, 630, images_per_subject=21)
    assert len(faces.group) == 1260 and len(np.unique(faces.subject)) == 60
    per_person = np.zeros((60, 7), dtype=int)
    np.add.at(per_person, (faces.subject, faces.emotion), 1)
    assert (per_person == 3).all()
    # Persons never span two groups.
    assert all(len(np.unique(faces.group[faces.subject == s])) == 1 for s in range(60))


def test_layout_follows_the_mix_and_the_share():
    group = Group(values={"race": "B"}, share=84 / 408, mix={"anger": 0.5, "disgust": 0.25, "fear": 0.25})
    faces = lay_out((group,), THREE, 408, images_per_subject=1)
    assert np.bincount(faces.emotion, minlength=3).tolist() == [42, 21, 21]


@pytest.mark.parametrize(("p", "sd"), [(0.7, 1.0), (0.65, 1.0), (0.05, 2.0)])
def test_marginal_intercept_keeps_the_stated_rate(p, sd):
    # Oracle: Monte Carlo over the person effect (2e6 draws: standard error below 0.0004).
    draws = np.random.default_rng(1).normal(0.0, sd, 2_000_000)
    assert expit(marginal_intercept(p, sd) + draws).mean() == pytest.approx(p, abs=0.0015)


def test_wrong_answers_carry_the_named_confusion_as_an_absolute_rate():
    group = Group(values={"race": "A"}, accuracy=0.7, confusion={"anger->disgust": 0.08}, non_answer=0.02)
    labels = ("anger", "disgust", "fear", "refused")
    row_ = wrong_distribution(group, "anger", THREE, labels)
    assert row_.sum() == pytest.approx(1.0)
    # P(pred = disgust | anger) = P(wrong) * P(disgust | wrong) = 0.3 * (0.08 / 0.3).
    assert 0.3 * row_ == pytest.approx([0.0, 0.08, 0.20, 0.02])


def test_impossible_answer_probabilities_are_refused():
    group = Group(values={"race": "A"}, accuracy=0.9, confusion={"anger->disgust": 0.2})
    with pytest.raises(ValueError, match="do not sum to 1"):
        wrong_distribution(group, "anger", THREE, ("anger", "disgust", "fear", "refused"))


def test_simulated_answers_match_the_stated_rates():
    groups = (Group(values={"race": "A"}, accuracy=0.7, confusion={"anger->disgust": 0.1}, non_answer=0.03),)
    faces = lay_out(groups, THREE, 60_000, images_per_subject=1)
    answers = Answerer.build(groups, THREE, 0.0).answer(faces, np.random.default_rng(5))
    anger = answers[faces.emotion == 0]
    for label, rate in (("anger", 0.7), ("disgust", 0.1), ("refused", 0.03), ("fear", 0.17)):
        # Oracle: binomial standard error; 4.5 SE leaves a chance below 1e-5 of a spurious failure.
        se = math.sqrt(rate * (1 - rate) / len(anger))
        assert abs(np.mean(anger == label) - rate) < 4.5 * se, label


def test_person_effect_clusters_answers_by_person():
    # With sd 1 on the logit scale the per-person accuracies vary more than binomial noise allows:
    # the variance of person means exceeds p(1-p)/k (the independent-images value) by the person spread.
    groups = (Group(values={"race": "A"}, accuracy=0.7),)
    faces = lay_out(groups, THREE, 21 * 2000, images_per_subject=21)
    answers = Answerer.build(groups, THREE, 1.0).answer(faces, np.random.default_rng(2))
    correct = answers == np.asarray(THREE, dtype=object)[faces.emotion]
    per_person = np.bincount(faces.subject, weights=correct) / 21
    # The marginal rate stays 0.7 (4.5 standard errors of the mean of independent persons).
    assert abs(per_person.mean() - 0.7) < 4.5 * per_person.std() / math.sqrt(len(per_person))
    assert per_person.var() > 2 * 0.7 * 0.3 / 21


# -- the policy file ---------------------------------------------------------------------------


def test_policy_enables_only_the_scenarios_criterion_and_loads(tmp_path):
    scenario = _scenario(_two(0.7, 0.7), criterion="confusion_ratio", mode="equivalence")
    scenario = replace(scenario, policy={**scenario.policy, "criteria": {"confusion_ratio": {"pairs": ["a->b"]}}})
    document = policy_document(scenario)
    assert tomllib.loads(to_toml(document)) == document
    fixed = replace(scenario, policy={**scenario.policy, "criteria": {"confusion_ratio": {"pairs": ["anger->fear"]}}})
    path = tmp_path / "thresholds.toml"
    path.write_text(to_toml(policy_document(fixed)))
    thresholds = load_thresholds(path)
    assert thresholds.mode == "equivalence"
    assert [n for n, c in thresholds.criteria.items() if c.enabled] == ["confusion_ratio"]
    assert thresholds.criterion("confusion_ratio").pairs == (("anger", "fear"),)


def test_every_scenario_is_well_formed(tmp_path):
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    for s in SCENARIOS:
        Answerer.build(s.groups, s.emotions, s.person_sd)  # raises on an impossible answer row
        assert s.checks and all(c.event in ("FAIL", "PASS", "settled") for c in s.checks)
        path = tmp_path / "thresholds.toml"
        path.write_text(to_toml(policy_document(s)))
        enabled = [n for n, c in load_thresholds(path).criteria.items() if c.enabled]
        assert enabled == ([s.criterion] if s.criterion else list(harness.CRITERIA))


# -- runs through the product ------------------------------------------------------------------


def _exact(self, faces, rng):
    """Answers without sampling noise: in each group x emotion, exactly round(p * n) faces are correct."""
    labels = np.asarray(self.labels, dtype=object)
    answers = labels[faces.emotion].copy()
    for g, e in {(int(g), int(e)) for g, e in zip(faces.group, faces.emotion, strict=True)}:
        where = np.flatnonzero((faces.group == g) & (faces.emotion == e))
        wrong = len(where) - round(expit(self.intercept[g, e]) * len(where))
        answers[where[:wrong]] = labels[(e + 1) % len(THREE)]
    return answers


def test_identical_groups_pass_every_time(tmp_path, monkeypatch):
    # Both groups exactly 700 of 1000 correct. Oracle: statsmodels' Newcombe interval for the
    # difference lies inside the band +-0.05, so the harm-mode verdict is PASS in every simulation.
    low, high = confint_proportions_2indep(700, 1000, 700, 1000, method="newcomb", compare="diff")
    assert -0.05 <= low and high <= 0.05
    monkeypatch.setattr(Answerer, "answer", _exact)
    scenario = _scenario(_two(0.7, 0.7))
    for index in range(3):
        outcomes = run_one(Simulation(scenario, 1000, index), tmp_path)
        assert [(o.criterion, o.verdict) for o in outcomes] == [("accuracy_gap", "PASS")]


def test_a_huge_planted_gap_fails_every_time(tmp_path):
    # Accuracy 0.95 vs 0.05 with 200 faces each: even the most extreme draws leave the whole interval
    # far beyond the band (a 0.9 gap; the 95% interval is about +-0.05 wide).
    scenario = _scenario(_two(0.95, 0.05), checks=(Check(label="detection", event="FAIL", promise=None),))
    measured = list(
        harness.measure([replace(scenario, quick_sizes=(200,), quick_sims=4)], quick=True, root=tmp_path, workers=1)
    )
    assert [(m.size, m.sims, m.events) for m in measured] == [(200, 4, 4)]
    assert measured[0].verdicts == {"PASS": 0, "FAIL": 4, "INCONCLUSIVE": 0}


def test_a_simulation_is_reproducible_from_its_seed(tmp_path):
    scenario = _scenario(_two(0.7, 0.66), criterion="recall_gap")
    first = Answerer.build(scenario.groups, THREE, 0.0)
    faces = lay_out(scenario.groups, THREE, 60, 1)
    draw = [first.answer(faces, np.random.default_rng(seed_of(scenario.name, 60, i))) for i in (3, 3, 4)]
    assert (draw[0] == draw[1]).all() and not (draw[0] == draw[2]).all()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    outcomes = run_one(Simulation(scenario, 60, 3), tmp_path / "a")
    assert outcomes == run_one(Simulation(scenario, 60, 3), tmp_path / "b")
    assert len(outcomes) == 3  # one record per emotion


def test_follow_up_reruns_inconclusive_records_at_their_required_n(tmp_path):
    scenario = replace(
        _scenario(_two(0.7, 0.7), checks=(Check(label="settled", event="settled", promise=0.8, at_most=False),)),
        policy={"criteria": {"accuracy_gap": {"tolerance": 0.2}}},  # a wide band: required_n stays small
        follow_up=True,
        quick_sizes=(30,),
        quick_sims=3,
    )
    (measured,) = harness.measure([scenario], quick=True, root=tmp_path, workers=1)
    # At 30 per group a 0.2 band is not settled (power about 0.6); each run is re-run at its required_n.
    assert measured.sims == 3 and "3 of 3 runs INCONCLUSIVE at n=30" in measured.note
    assert sum(measured.verdicts.values()) == 3


def test_a_world_spreads_its_links_over_several_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "_LINKS_PER_FILE", 25)
    folder = harness.world_dir(tmp_path, _scenario(_two(0.7, 0.7)), 30)
    copies = sorted(folder.glob("one-*.png"))
    assert [p.name for p in copies] == ["one-0.png", "one-1.png", "one-2.png"]
    assert [p.stat().st_nlink for p in copies] == [26, 26, 11]  # the copy itself plus its links
    manifest = pd.read_csv(folder / "manifest.csv")
    assert len(manifest) == 60 and manifest["race"].value_counts().to_dict() == {"A": 30, "B": 30}


def test_a_run_that_raises_is_reported_not_fatal(tmp_path, monkeypatch):
    def broken(sim, root):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(harness, "run_one", broken)
    scenario = replace(_scenario(_two(0.7, 0.7)), quick_sizes=(30,), quick_sims=2)
    (measured,) = harness.measure([scenario], quick=True, root=tmp_path, workers=1)
    assert measured.sims == 0 and measured.note == "2 runs raised, e.g. RuntimeError: boom"
    assert "no runs" in row(measured) and "| — |" in row(measured)


# -- the table ---------------------------------------------------------------------------------


def test_meets_uses_two_standard_errors_at_the_promise():
    se = math.sqrt(0.05 * 0.95 / 400)
    assert meets(0.05 + 2 * se - 1e-9, 0.05, 400, at_most=True)
    assert not meets(0.05 + 2 * se + 1e-9, 0.05, 400, at_most=True)
    assert meets(0.8 - 2 * math.sqrt(0.16 / 100) + 1e-9, 0.8, 100, at_most=False)
    assert meets(0.5, None, 100, at_most=True) is None


def test_a_row_shows_the_wilson_interval_and_the_mark():
    scenario = _scenario(_two(0.7, 0.7))
    m = Measured(
        scenario=scenario,
        check_index=0,
        size=300,
        sims=200,
        events=20,
        verdicts={"PASS": 150, "FAIL": 20, "INCONCLUSIVE": 30},
        rules={"inside": 150, "outside": 20, "overlap": 30},
    )
    low, high = proportion_confint(20, 200, method="wilson")
    line = row(m)
    assert f"10.0% [{100 * low:.1f}%, {100 * high:.1f}%]" in line
    assert "75.0% / 10.0% / 15.0%" in line and "| **NO** |" in line  # 10% > 5% + 2 SE (3.1%)
    page = render([m], command="python -m simulations", seconds=60)
    assert page.count("\n|") == 3 and "1 of 1 rows miss their promise." in page
    assert "test/accuracy_gap/harm" in page and "test world" in page


def test_cli_lists_and_rejects_unknown_scenarios(capsys):
    assert main(["--list", "--only", "settles/"]) == 0
    assert capsys.readouterr().out.count("\n") == len(select(SCENARIOS, ["settles/"]))
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "no-such-scenario"])
    assert exit_info.value.code == 2
    assert "--only no-such-scenario: no scenario name starts with it" in capsys.readouterr().err


# -- promises, measured (slow) -----------------------------------------------------------------


@pytest.mark.slow
def test_accuracy_gap_keeps_its_promises_at_100_per_group(tmp_path):
    # 300 simulations per row: a 2.5% promise is judged to within 2 SE = 1.8 points.
    chosen = select(SCENARIOS, ["accuracy_gap/none", "accuracy_gap/edge"])
    measured = list(harness.measure(chosen, quick=True, root=tmp_path, workers=2, sims=300, sizes=(100,)))
    assert len(measured) == 4 and all(judged(m) for m in measured), [row(m) for m in measured]
