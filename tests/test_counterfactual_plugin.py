"""counterfactual_flip through the plugin: synthetic?counterfactual=true and the built-in default model.

The oracle is the run's own per-sample answers (fairness-outcomes.csv.gz) paired here by draw, so the
flip rate in fairness.json is recomputed from the answers, not from the criterion's code.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from fer_fairness.datasets import synthetic
from fer_fairness.datasets.synthetic import SyntheticSpec, load_synthetic
from fer_fairness.labels import NOT_EVALUATED
from tests.criteria.coherence import assert_coherent

REPO = Path(__file__).resolve().parents[1]
# 12 identities x 7 expressions x 1 variant, each rendered at 3 tones: 84 faces per tone, a few seconds.
SMALL = SyntheticSpec(subjects=(("light", "female", 6), ("light", "male", 6)), variants=1, image_size=32)


def test_the_default_model_is_judged_on_flips_between_renders_of_the_same_face(pytester, monkeypatch, tmp_path):
    monkeypatch.setattr(synthetic, "DEFAULT_SPEC", SMALL)
    pytester.mkdir("fairness_tests")
    shipped = (REPO / "fairness_tests" / "test_counterfactual.py").read_text()
    (pytester.path / "fairness_tests" / "test_counterfactual.py").write_text(shipped)
    cache = tmp_path / "cache"
    result = pytester.runpytest(
        "fairness_tests", "--fairness-dataset=synthetic?counterfactual=true", f"--fairness-cache-dir={cache}", "-rfs"
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()

    reports = pytester.path / "reports"
    records = json.loads((reports / "fairness.json").read_text())["tests"]
    flips = [r for r in records if r["criterion"] == "counterfactual_flip"]
    # Skin tone only: each tone against the reference tone, never gender or the intersections.
    assert len(flips) == 2 and {r["attribute"] for r in flips} == {"skin_tone"}
    assert all(r["dataset"] == "synthetic-counterfactual" and r["model"] == "hog-probe" for r in flips)
    result.assert_outcomes(**{_outcome(r): sum(_outcome(s) == _outcome(r) for s in flips) for r in flips})

    dataset = load_synthetic(cache_dir=cache, seed=0, spec=SMALL, counterfactual=True, progress=False)
    answers = pd.read_csv(reports / "fairness-outcomes.csv.gz", dtype=str)
    samples = dataset.samples.merge(answers[["sample_id", "outcome"]], on="sample_id")
    wide = samples.pivot(index="counterfactual_id", columns="skin_tone", values="outcome")
    for record in flips:
        group, reference = record["group"], record["reference"]
        both = wide[(wide[group] != NOT_EVALUATED) & (wide[reference] != NOT_EVALUATED)]
        assert record["estimate"] == pytest.approx((both[group] != both[reference]).mean())
        assert record["n"] == {group: len(both), reference: len(both)}
        assert record["ci_low"] <= record["estimate"] <= record["ci_high"]
        assert f"the answer differs between the {reference} and the {group} render" in record["reason"]
        assert_coherent(record, target_power=0.8)


def _outcome(record: dict) -> str:
    return {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "skipped"}[record["verdict"]]
