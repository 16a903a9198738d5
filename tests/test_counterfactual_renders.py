"""counterfactual_flip and the counterfactual synthetic set, against planted models and direct formulas.

Oracles: the drawing's own facts (same seed, same bytes; pixels outside any possible face; luminance
scaling with skin), planted toy models whose flips are known by construction, and the flip rate's
interval recomputed here from the flip indicators with the design effect and Wilson written out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats as scipy_stats

from fer_fairness.counts import build_counts
from fer_fairness.criteria.counterfactual import KEY, renders
from fer_fairness.criteria.evaluate import Table, evaluate, planned_tests
from fer_fairness.criteria.verdict import Verdict
from fer_fairness.datasets import DATASETS, synthetic
from fer_fairness.datasets.synthetic import SKIN_LUMINANCE, SKIN_TONES, SyntheticSpec, load_synthetic
from fer_fairness.errors import ConfigError
from fer_fairness.labels import NOT_EVALUATED
from tests.criteria._build import policy
from tests.criteria.coherence import assert_coherent

TINY = SyntheticSpec(subjects=(("light", "female", 2), ("dark", "male", 1)), variants=1)
# Enough draws for a decided verdict: 12 identities x 7 expressions x 2 variants = 168 draws per tone.
SMALL = SyntheticSpec(subjects=(("light", "female", 6), ("medium", "male", 6)), variants=2, image_size=32)


def pixels(dataset, sample_id: str) -> np.ndarray:
    path = dataset.samples.set_index("sample_id").at[sample_id, "path"]
    with Image.open(dataset.root / path) as image:
        return np.asarray(image, dtype=np.int64)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return load_synthetic(
        cache_dir=tmp_path_factory.mktemp("cf"), seed=0, spec=SMALL, counterfactual=True, progress=False
    )


# -- the set --------------------------------------------------------------------------------------


def test_every_draw_is_rendered_once_at_each_tone_with_everything_but_skin_shared(tmp_path):
    dataset = load_synthetic(cache_dir=tmp_path, seed=0, spec=TINY, counterfactual=True, progress=False)
    samples = dataset.samples
    assert dataset.name == "synthetic-counterfactual"
    assert dataset.attributes == ("skin_tone", "gender")  # the key is not a demographic attribute
    assert len(samples) == 3 * TINY.n_images
    per_draw = samples.groupby(KEY)
    tones = per_draw["skin_tone"].agg(sorted)
    assert len(tones) == TINY.n_images and all(t == sorted(SKIN_TONES) for t in tones)
    shared = ["subject_id", "gender", "emotion", "source_intensity", "source_lighting"]
    assert (per_draw[shared].nunique() == 1).all().all()
    # One person is one identity, whatever tone it is rendered at (clustering counts people).
    assert samples["subject_id"].nunique() == TINY.n_subjects
    luminance = samples.pivot(index=KEY, columns="skin_tone", values="source_skin_luminance")
    expected = {t: SKIN_LUMINANCE[t] - SKIN_LUMINANCE["light"] for t in SKIN_TONES}
    for tone in SKIN_TONES:  # the identity's own offset from its tone's mean is kept at every tone
        assert np.allclose(luminance[tone] - luminance["light"], expected[tone], atol=1e-3)


def test_same_draw_twice_gives_identical_bytes_and_the_default_set_is_untouched(tmp_path):
    first = load_synthetic(cache_dir=tmp_path / "a", seed=2, spec=TINY, counterfactual=True, progress=False)
    second = load_synthetic(cache_dir=tmp_path / "b", seed=2, spec=TINY, counterfactual=True, progress=False)
    plain = load_synthetic(cache_dir=tmp_path / "a", seed=2, spec=TINY, progress=False)
    assert first.root.name != plain.root.name and first.root.parent == plain.root.parent
    assert first.fingerprint() == second.fingerprint()
    for row in first.samples.itertuples():
        assert (first.root / row.path).read_bytes() == (second.root / row.path).read_bytes()
    # The render at the identity's own tone is the default set's image of that draw, byte for byte.
    for row in plain.samples.itertuples():
        own = f"{row.sample_id}-{row.skin_tone}"
        assert (first.root / f"images/{own}.png").read_bytes() == (plain.root / row.path).read_bytes()
    assert KEY not in plain.samples.columns


def test_renders_differ_only_where_skin_is(tmp_path):
    spec = SyntheticSpec(subjects=TINY.subjects, variants=1, noise_sd=0.0)
    dataset = load_synthetic(cache_dir=tmp_path, seed=1, spec=spec, counterfactual=True, progress=False)
    size = spec.image_size
    # The face spans at most 31 of 96 canvas units either side of a centre jittered by 1.5 (synthetic.py):
    # output columns 0-6 and 42-47 never hold skin, so they must be identical across tones.
    outside = np.r_[0:7, size - 6 : size]
    for draw, rows in dataset.samples.groupby(KEY):
        by_tone = {row.skin_tone: pixels(dataset, row.sample_id) for row in rows.itertuples()}
        light, medium, dark = by_tone["light"], by_tone["medium"], by_tone["dark"]
        assert (light[:, outside] == dark[:, outside]).all(), draw
        assert (dark <= medium).all() and (medium <= light).all(), draw  # less light from darker skin, nowhere more
        changed = light != dark
        assert changed.sum() > 0.2 * size * size, draw
        # Without noise a skin pixel scales with skin luminance: inside the face the ratio is the skin ratio.
        skin = rows.set_index("skin_tone")["source_skin_luminance"]
        interior = changed & (light > 80)  # bright, well-lit skin, away from features and edges
        ratio = np.median(dark[interior] / light[interior])
        assert ratio == pytest.approx(skin["dark"] / skin["light"], abs=0.03), draw


def test_registry_option(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "DEFAULT_SPEC", TINY)
    spec = DATASETS.parse("synthetic?counterfactual=true")
    dataset = DATASETS.factory(spec.kind)(spec, cache_dir=tmp_path, seed=0, progress=False)
    assert dataset.name == "synthetic-counterfactual" and len(dataset.samples) == 3 * TINY.n_images
    bad = DATASETS.parse("synthetic?counterfactual=yes")
    with pytest.raises(ConfigError) as caught:
        DATASETS.factory(bad.kind)(bad, cache_dir=tmp_path, seed=0, progress=False)
    assert str(caught.value) == (
        "dataset 'synthetic?counterfactual=yes': option counterfactual must be true or false; got 'yes'"
    )


# -- the criterion ----------------------------------------------------------------------------------


def mean_luminance(dataset) -> pd.Series:
    return pd.Series({row.sample_id: pixels(dataset, row.sample_id).mean() for row in dataset.samples.itertuples()})


def tables(dataset, outcome: pd.Series) -> list[Table]:
    """The skin-tone and gender tables of a run whose answers are ``outcome`` (by sample id)."""
    joined = dataset.samples.assign(outcome=dataset.samples["sample_id"].map(outcome).to_numpy())
    made = []
    for attribute in ("skin_tone", "gender"):
        tensor = build_counts(joined, attributes=(attribute,), labels=dataset.emotions)
        reference = "light" if attribute == "skin_tone" else "female"
        pairs = tuple((g, reference) for g in tensor.groups if g != reference)
        made.append(
            Table(
                model="toy",
                dataset=dataset.name,
                tensor=tensor,
                pairs=pairs,
                counterfactual=renders(joined, (attribute,)),
            )
        )
    return made


def flip_records(records) -> dict[str, object]:
    return {r.group: r for r in records if r.criterion == "counterfactual_flip"}


def test_a_tone_blind_model_passes_and_a_luminance_reader_fails(small):
    thresholds = policy(only=("counterfactual_flip", "accuracy_gap"))
    samples = small.samples
    # Reads the draw only (its expression intensity), never the pixels: it cannot see skin.
    blind = pd.Series(
        np.where(samples["source_intensity"] > 0.7, samples["emotion"], "neutral"), index=samples["sample_id"]
    )
    records = flip_records(evaluate(tables(small, blind), thresholds=thresholds, seed=0))
    assert set(records) == {"medium", "dark"}  # skin tone only, each tone against the reference's render
    for record in records.values():
        assert record.estimate == 0 and record.verdict is Verdict.PASS and record.rule == "inside"
        assert_coherent(record, target_power=thresholds.power)
    # Thresholds raw mean luminance: bright images read as happy, dark ones as sad.
    luminance = mean_luminance(small)
    reader = pd.Series(np.where(luminance > luminance.median(), "happiness", "sadness"), index=luminance.index)
    records = flip_records(evaluate(tables(small, reader), thresholds=thresholds, seed=0))
    dark = records["dark"]
    assert dark.verdict is Verdict.FAIL and dark.rule == "outside" and dark.ci_low > 0.05
    assert dark.estimate > records["medium"].estimate
    assert "the answer differs between the light and the dark render of the same face" in dark.reason
    assert_coherent(dark, target_power=thresholds.power)


def _wilson(x: float, n: float, confidence: float) -> tuple[float, float]:
    z = scipy_stats.norm.isf((1 - confidence) / 2)
    centre = (x + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(x * (n - x) / n + z * z / 4)
    return centre - half, centre + half


def test_interval_is_wilson_on_design_effect_adjusted_counts(small):
    thresholds = policy(only=("counterfactual_flip",))
    samples = small.samples
    # Planted: some people flip often (their subject number is even), others never, so flips cluster.
    subject_number = samples["subject_id"].str[3:].astype(int)
    draw_number = samples["sample_id"].factorize()[0] // 3
    flips = (subject_number % 2 == 0) & (draw_number % 3 != 0) & (samples["skin_tone"] == "dark")
    answer = pd.Series(np.where(flips, "anger", samples["emotion"]), index=samples["sample_id"])
    # A render that was never evaluated drops its draw: planted on a draw that would otherwise flip.
    dropped = samples[flips & (samples["skin_tone"] == "dark")]["sample_id"].iloc[0]
    answer[dropped] = NOT_EVALUATED
    record = flip_records(evaluate(tables(small, answer), thresholds=thresholds, seed=0))["dark"]

    # The oracle: flip indicators per draw from the planted answers, then the formulas by hand.
    wide = samples.assign(answer=samples["sample_id"].map(answer).to_numpy()).pivot(
        index=KEY, columns="skin_tone", values="answer"
    )
    subjects = samples.groupby(KEY)["subject_id"].first()
    kept = wide[(wide["dark"] != NOT_EVALUATED) & (wide["light"] != NOT_EVALUATED)]
    flip = (kept["dark"] != kept["light"]).astype(int)
    per = flip.groupby(subjects[kept.index]).agg(["sum", "size"])
    x, n = per["sum"].to_numpy(float), per["size"].to_numpy(float)
    k, total = len(n), n.sum()
    p = x.sum() / total
    assert len(kept) == len(wide) - 1 and record.n == {"dark": len(kept), "light": len(kept)}
    assert record.estimate == pytest.approx(p)
    robust = k / (k - 1) * ((x - p * n) ** 2).sum() / total**2
    deff = robust / (p * (1 - p) / total)
    assert deff > 1.5  # planted clustering is visible
    level = record.confidence
    small_k = (scipy_stats.t.isf((1 - level) / 2, k - 1) / scipy_stats.norm.isf((1 - level) / 2)) ** 2
    low, high = _wilson(x.sum() / (deff * small_k), total / (deff * small_k), level)
    assert (record.ci_low, record.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert "clustered by subject" in record.inference
    assert "1 face(s) left out, not evaluated at one of the two tones" in record.reason
    assert_coherent(record, target_power=thresholds.power)


def test_no_test_and_no_share_of_alpha_without_counterfactual_renders(small):
    thresholds = policy(only=("counterfactual_flip", "accuracy_gap"))
    answer = pd.Series(small.samples["emotion"].to_numpy(), index=small.samples["sample_id"])
    with_renders = tables(small, answer)
    plain = [Table(**{**t.__dict__, "counterfactual": None}) for t in with_renders]
    planned = planned_tests(with_renders, thresholds=thresholds, with_baseline=False)
    assert {(p.criterion, p.attribute) for p in planned if p.criterion == "counterfactual_flip"} == {
        ("counterfactual_flip", "skin_tone")
    }
    without = planned_tests(plain, thresholds=thresholds, with_baseline=False)
    assert {p.criterion for p in without} == {"accuracy_gap"}
    records = evaluate(plain, thresholds=thresholds, seed=0)
    assert {r.criterion for r in records} == {"accuracy_gap"}
    # The gate's alpha is shared only by criteria that can decide here: accuracy_gap alone, at 0.05.
    assert records[0].family_size == 3 and records[0].confidence_nominal == pytest.approx(1 - 0.05 / 3)
    assert renders(small.samples.assign(outcome="x").drop(columns=KEY), ("skin_tone",)) is None
