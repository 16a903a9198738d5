"""Linear probe: out-of-fold by subject, C chosen inside the training folds, cached, and sane."""

from __future__ import annotations

import hashlib
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_fairness import _digests
from fer_fairness._cache import digest_of, stable_key
from fer_fairness.datasets._table import Dataset
from fer_fairness.datasets.synthetic import SyntheticSpec, load_synthetic
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.labels import BASIC_SEVEN
from fer_fairness.models import MODELS
from fer_fairness.models import probe as probe_module
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext
from fer_fairness.models.hog import HogEmbedder
from fer_fairness.models.probe import HOG_C_GRID, LinearProbe, outer_folds


def make_dataset(root: Path, *, subjects: int = 24, repeats: int = 2) -> Dataset:
    """Each subject shows every emotion ``repeats`` times; files hold their own id (distinct bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(subjects):
        for emotion in BASIC_SEVEN:
            for r in range(repeats):
                sample_id = f"p{s:02d}-{emotion}-{r}"
                (root / f"{sample_id}.bin").write_text(sample_id)
                rows.append(
                    {
                        "sample_id": sample_id,
                        "path": f"{sample_id}.bin",
                        "emotion": emotion,
                        "subject_id": f"p{s:02d}",
                        "gender": ("female", "male")[s % 2],
                        "tone": ("a", "b")[(s // 2) % 2],
                    }
                )
    return Dataset(
        name="toy", root=root, samples=pd.DataFrame(rows), attributes=("gender", "tone"), emotions=BASIC_SEVEN
    )


class TableEmbedder:
    """Looks each image up by file name in a fixed table: the probe only ever hands over paths."""

    def __init__(self, name: str, rows: dict[str, np.ndarray]) -> None:
        self.name = name
        self.rows = rows
        self.calls = 0

    def settings(self):
        return {"table": self.name}

    def embed(self, paths, *, progress):
        self.calls += 1
        return np.stack([self.rows[Path(p).stem] for p in paths])


def separable(dataset: Dataset, *, seed: int = 0, index_column: bool = False) -> TableEmbedder:
    """One-hot emotion, scaled, plus unit noise: class means 8.5 noise SDs apart, so nearly separable."""
    rng = np.random.default_rng(seed)
    rows = {}
    for i, row in enumerate(dataset.samples.itertuples()):
        vector = np.r_[6.0 * (np.array(BASIC_SEVEN) == row.emotion), np.zeros(5)] + rng.normal(size=12)
        rows[row.sample_id] = np.r_[i, vector] if index_column else vector
    return TableEmbedder("separable", rows)


class HoldingEmbedder(TableEmbedder):
    """Takes ``held`` as an embedder that decodes bytes does, and keeps what it was given."""

    def embed(self, paths, *, progress, held=None):
        self.held = dict(held or {})
        return super().embed(paths, progress=progress)


def noise(dataset: Dataset, *, seed: int = 0) -> TableEmbedder:
    rng = np.random.default_rng(seed)
    return TableEmbedder("noise", {sample_id: rng.normal(size=12) for sample_id in dataset.samples["sample_id"]})


def context(tmp_path: Path, seed: int = 0, progress: bool = False) -> PredictContext:
    return PredictContext(seed=seed, cache_dir=tmp_path / "cache", progress=progress)


def accuracy(dataset: Dataset, outcomes: pd.DataFrame) -> float:
    merged = dataset.samples.merge(outcomes, on="sample_id", validate="one_to_one")
    return float((merged["outcome"] == merged["emotion"]).mean())


@pytest.fixture
def toy(tmp_path) -> Dataset:
    return make_dataset(tmp_path / "images")


def test_every_sample_is_predicted_once_by_a_model_that_never_saw_its_subject(toy, tmp_path):
    result = LinearProbe(separable(toy)).cross_validate(toy, context=context(tmp_path))
    outcomes = result.outcomes
    assert list(outcomes["sample_id"]) == list(toy.samples["sample_id"])
    folds = outcomes.set_index("sample_id")["fold"]
    per_subject = folds.groupby(toy.samples.set_index("sample_id")["subject_id"]).nunique()
    assert (per_subject == 1).all()  # a subject's images all sit in one test fold
    assert sorted(folds.unique()) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(outcomes["fold"], outer_folds(toy.samples, toy.attributes, n_splits=5, seed=0))


def test_outer_folds_are_stratified_by_emotion_and_every_attribute(toy):
    folds = outer_folds(toy.samples, toy.attributes, n_splits=4, seed=1)
    table = toy.samples.assign(fold=folds)
    for _, part in table.groupby("fold"):
        assert set(part["gender"]) == {"female", "male"}
        assert set(part["tone"]) == {"a", "b"}
        assert set(part["emotion"]) == set(BASIC_SEVEN)
    subjects = table.groupby("fold")["subject_id"].nunique()
    assert subjects.sum() == 24 and subjects.max() - subjects.min() <= 2


def test_c_is_chosen_by_an_inner_cv_over_training_subjects_only(toy, tmp_path, monkeypatch):
    calls = []

    class SpyGridSearchCV(probe_module.GridSearchCV):
        def fit(self, X, y=None, **params):
            calls.append((np.asarray(X)[:, 0].astype(int), [(np.asarray(a), np.asarray(b)) for a, b in self.cv]))
            return super().fit(X, y, **params)

    monkeypatch.setattr(probe_module, "GridSearchCV", SpyGridSearchCV)
    probe = LinearProbe(separable(toy, index_column=True), c_grid=(0.01, 0.1, 1.0), inner_folds=3)
    result = probe.cross_validate(toy, context=context(tmp_path))

    subjects = toy.samples["subject_id"].to_numpy()
    folds = result.outcomes["fold"].to_numpy()
    assert len(calls) == 5
    for fold, (rows, splits) in enumerate(calls):
        # Everything that was fit in this fold (scaler, inner CV, refit) saw the training rows only.
        np.testing.assert_array_equal(rows, np.flatnonzero(folds != fold))
        assert len(splits) == 3
        for train, validation in splits:
            assert len(np.intersect1d(train, validation)) == 0
            assert max(train.max(), validation.max()) < len(rows)
            assert not set(subjects[rows[train]]) & set(subjects[rows[validation]])
    assert set(result.chosen_c) == {0, 1, 2, 3, 4}
    assert set(result.chosen_c.values()) <= {0.01, 0.1, 1.0}


def test_same_seed_gives_the_same_predictions_and_another_seed_other_folds(toy, tmp_path):
    embedder = separable(toy)
    first = LinearProbe(embedder).cross_validate(toy, context=PredictContext(seed=7, cache_dir=tmp_path / "a"))
    second = LinearProbe(embedder).cross_validate(toy, context=PredictContext(seed=7, cache_dir=tmp_path / "b"))
    pd.testing.assert_frame_equal(first.outcomes, second.outcomes)
    other = LinearProbe(embedder).cross_validate(toy, context=PredictContext(seed=8, cache_dir=tmp_path / "a"))
    assert not np.array_equal(first.outcomes["fold"], other.outcomes["fold"])


def test_oracle_separable_embedding_is_read_almost_perfectly(toy, tmp_path):
    outcomes = LinearProbe(separable(toy)).predict(toy, context=context(tmp_path))
    assert accuracy(toy, outcomes) >= 0.95


def test_oracle_pure_noise_is_read_at_chance(tmp_path):
    dataset = make_dataset(tmp_path / "images", subjects=40, repeats=2)
    outcomes = LinearProbe(noise(dataset)).predict(dataset, context=context(tmp_path))
    # chance is 1/7 = 0.143; 560 samples give a standard error of about 0.015
    assert 0.07 <= accuracy(dataset, outcomes) <= 0.23


def test_outcome_table_has_the_contract_columns(toy, tmp_path):
    outcomes = LinearProbe(separable(toy)).predict(toy, context=context(tmp_path))
    assert tuple(outcomes.columns) == OUTCOME_COLUMNS
    assert set(outcomes["outcome"]) <= set(BASIC_SEVEN)
    probability = outcomes["raw"].astype(float)
    assert ((probability > 1 / 7) & (probability <= 1)).all()  # the winning class beats a uniform guess


def test_second_run_is_served_from_the_cache(toy, tmp_path, monkeypatch):
    embedder = separable(toy)
    first = LinearProbe(embedder).cross_validate(toy, context=context(tmp_path))
    assert embedder.calls == 1
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1
    assert len(list((tmp_path / "cache" / "probe").glob("*.parquet"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(LinearProbe, "_cross_validate", refuse)
    second = LinearProbe(embedder).cross_validate(toy, context=context(tmp_path))
    assert embedder.calls == 1
    pd.testing.assert_frame_equal(first.outcomes, second.outcomes)


def count_image_opens(monkeypatch, folder: Path) -> list[str]:
    """Every open() of a file under ``folder`` (builtins and io: PIL and pathlib use one or the other)."""
    import builtins
    import io

    opened = []
    original = builtins.open

    def counted(file, *args, **kwargs):
        if isinstance(file, str | Path) and Path(file).is_relative_to(folder):
            opened.append(str(file))
        return original(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counted)
    monkeypatch.setattr(io, "open", counted)
    return opened


@pytest.fixture
def settled(monkeypatch):
    """Files just written count as settled: no racy window, so their digests are remembered."""
    monkeypatch.setattr(_digests, "RACY_NS", -(10**12))


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Dataset:
    """140 small synthetic faces: 20 subjects (5 per skin tone x gender) x 7 expressions."""
    groups = tuple((tone, gender, 5) for tone in ("light", "dark") for gender in ("female", "male"))
    spec = SyntheticSpec(subjects=groups, variants=1, image_size=32)
    return load_synthetic(cache_dir=tmp_path_factory.mktemp("faces"), seed=0, progress=False, spec=spec)


def test_hog_probe_reads_each_image_once_cold_and_none_warm(faces, tmp_path, monkeypatch, settled):
    spec = MODELS.parse("hog-probe")
    opened = count_image_opens(monkeypatch, faces.root)
    cold = MODELS.factory(spec.kind)(spec).predict(faces, context=context(tmp_path))
    images = [str(faces.root / p) for p in faces.samples["path"]]
    assert sorted(opened) == sorted(images)  # hashed and decoded from the same bytes

    opened.clear()
    warm_probe = MODELS.factory(spec.kind)(spec)  # a new process would build a new model
    warm = warm_probe.predict(faces, context=context(tmp_path))
    features = warm_probe.embeddings(faces, context=context(tmp_path))
    assert opened == []
    pd.testing.assert_frame_equal(warm, cold, check_exact=True)
    # the features decoded from held bytes are those decoded from the files
    np.testing.assert_array_equal(features, HogEmbedder().embed([Path(p) for p in images], progress=False))


def test_embedding_cache_entries_written_before_stay_valid(toy, tmp_path):
    """The key is what it always was: (name, settings, digest of the images' SHA-256s in table order)."""
    content = digest_of(hashlib.sha256((toy.root / p).read_bytes()).hexdigest() for p in toy.samples["path"])
    key = stable_key("separable", {"table": "separable"}, content)
    old = tmp_path / "cache" / "embeddings" / f"separable-{key}.npy"
    old.parent.mkdir(parents=True)
    planted = np.arange(len(toy.samples) * 3, dtype=np.float32).reshape(-1, 3)
    np.save(old, planted)
    embedder = separable(toy)
    np.testing.assert_array_equal(LinearProbe(embedder).embeddings(toy, context=context(tmp_path)), planted)
    assert embedder.calls == 0


def test_bytes_read_to_hash_are_handed_to_the_embedder_up_to_the_budget(toy, tmp_path, monkeypatch):
    paths = [toy.root / p for p in toy.samples["path"]]
    embedder = HoldingEmbedder("holding", separable(toy).rows)
    LinearProbe(embedder).embeddings(toy, context=context(tmp_path / "all"))
    assert embedder.held == {i: path.read_bytes() for i, path in enumerate(paths)}

    budget = sum(len(path.read_bytes()) for path in paths[:3])
    monkeypatch.setattr(probe_module, "HELD_BYTES", budget)
    LinearProbe(embedder).embeddings(toy, context=context(tmp_path / "three"))
    assert sorted(embedder.held) == [0, 1, 2]


def test_a_missing_image_is_one_line_naming_it(toy, tmp_path):
    missing = toy.root / toy.samples["path"].iloc[3]
    missing.unlink()
    with pytest.raises(ModelError) as caught:
        LinearProbe(separable(toy)).predict(toy, context=context(tmp_path))
    assert str(caught.value) == f"linear probe: cannot read image {missing}: No such file or directory"


def test_embeddings_are_keyed_by_image_bytes_and_predictions_by_seed(toy, tmp_path):
    embedder = separable(toy)
    probe = LinearProbe(embedder)
    probe.predict(toy, context=context(tmp_path))
    probe.predict(toy, context=context(tmp_path, seed=1))  # new folds, same embeddings
    assert embedder.calls == 1
    assert len(list((tmp_path / "cache" / "probe").glob("*.parquet"))) == 2
    (toy.root / toy.samples["path"].iloc[0]).write_text("changed")
    probe.predict(toy, context=context(tmp_path))
    assert embedder.calls == 2


class SlowCountingEmbedder(TableEmbedder):
    def embed(self, paths, *, progress):
        with open(self.log, "a") as handle:
            handle.write("embed\n")
        time.sleep(0.3)
        return super().embed(paths, progress=progress)


_SHARED: dict[str, object] = {}


def _predict_in_child(_: int) -> list[str]:
    probe = LinearProbe(_SHARED["embedder"])
    return probe.predict(_SHARED["dataset"], context=_SHARED["context"])["outcome"].tolist()


def test_concurrent_workers_compute_each_entry_once(toy, tmp_path):
    embedder = SlowCountingEmbedder("slow", separable(toy).rows)
    embedder.log = tmp_path / "calls.log"
    _SHARED.update(embedder=embedder, dataset=toy, context=context(tmp_path))
    with multiprocessing.get_context("fork").Pool(3) as pool:
        results = pool.map(_predict_in_child, range(3))
    assert results[0] == results[1] == results[2]
    assert embedder.log.read_text() == "embed\n"
    assert len(list((tmp_path / "cache" / "probe").glob("*.parquet"))) == 1
    assert not list((tmp_path / "cache").rglob("*.tmp*"))


def test_progress_bars_go_to_stderr(toy, tmp_path, capsys):
    LinearProbe(separable(toy)).predict(toy, context=context(tmp_path, progress=True))
    captured = capsys.readouterr()
    assert captured.out == "" and "separable-probe folds" in captured.err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"c_grid": ()}, "c_grid must hold one or more positive numbers"),
        ({"c_grid": (1.0, -1.0)}, "c_grid must hold one or more positive numbers"),
        ({"outer_folds": 1}, "outer_folds must be an integer >= 2; got 1"),
        ({"inner_folds": 2.0}, "inner_folds must be an integer >= 2; got 2.0"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1 and tol > 0; got 0, 0.001"),
    ],
)
def test_invalid_settings_are_rejected(toy, kwargs, message):
    with pytest.raises(ModelError, match=message):
        LinearProbe(separable(toy), **kwargs)


def test_too_few_subjects_is_a_model_error(tmp_path):
    dataset = make_dataset(tmp_path / "images", subjects=3, repeats=1)
    with pytest.raises(ModelError, match="needs at least 5 subjects to split by subject; found 3"):
        LinearProbe(separable(dataset)).predict(dataset, context=context(tmp_path))


@pytest.mark.parametrize("bad", ["short", "nan"])
def test_embedder_output_is_checked(toy, tmp_path, bad):
    rows = separable(toy).rows
    if bad == "nan":
        rows = {k: np.full_like(v, np.nan) for k, v in rows.items()}
    embedder = TableEmbedder("bad", rows)
    if bad == "short":
        embedder.embed = lambda paths, *, progress: np.zeros((len(paths) - 1, 4))
    with pytest.raises(ModelError, match="embedder 'bad' returned an array of shape"):
        LinearProbe(embedder).predict(toy, context=context(tmp_path))


def test_describe_names_the_embedder_and_the_procedure(toy):
    facts = LinearProbe(separable(toy), c_grid=(0.5, 0.1)).describe()
    assert facts["embedder"] == "separable"
    assert facts["embedder_settings"] == "table=separable"
    assert "c_grid=[0.1, 0.5]" in facts["probe"]
    assert "by subject" in facts["evaluation"]
    assert all(isinstance(v, str) for v in facts.values())


def test_registry_builds_the_hog_probe():
    spec = MODELS.parse("hog-probe")
    model = MODELS.factory(spec.kind)(spec)
    assert isinstance(model, LinearProbe) and isinstance(model.embedder, HogEmbedder)
    assert model.name == "hog-probe"
    assert model.c_grid == HOG_C_GRID


@pytest.mark.parametrize("text", ["hog-probe:x", "hog-probe:?cells=4"])
def test_registry_rejects_targets_and_options(text):
    spec = MODELS.parse(text)
    with pytest.raises(ConfigError):
        MODELS.factory(spec.kind)(spec)


def test_probe_module_does_not_load_the_hog_embedder():
    code = "import sys, fer_fairness.models.probe; print('fer_fairness.models.hog' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


def test_too_few_subjects_per_group_is_a_model_error_not_a_traceback():
    from fer_fairness.errors import ModelError
    from fer_fairness.models.probe import outer_folds

    rows = [
        {"sample_id": f"{g}{s}{e}", "emotion": e, "subject_id": f"{g}{s}", "race": g}
        for g in ("a", "b")
        for s in range(3)
        for e in ("anger", "fear")
    ]
    with pytest.raises(ModelError, match=r"cannot split 6 subjects into 5 folds by subject"):
        outer_folds(pd.DataFrame(rows), ["race"], n_splits=5, seed=0)


class Killed(Exception):
    """Stands for the process dying mid-run."""


def test_a_run_killed_half_way_embeds_only_the_parts_it_lacks(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(probe_module, "PART", 100)  # 336 images: parts of 100, 100, 100 and 36
    table = separable(toy)
    oracle = table.embed([toy.root / p for p in toy.samples["path"]], progress=False)
    seen: list[int] = []

    def dies_on_the_third_part(paths, *, progress):
        if len(seen) == 2:
            raise Killed
        seen.append(len(paths))
        return TableEmbedder.embed(table, paths, progress=progress)

    monkeypatch.setattr(table, "embed", dies_on_the_third_part)
    with pytest.raises(Killed):
        probe_module.cached_embeddings(table, toy, context=context(tmp_path), what="test")
    assert seen == [100, 100]
    resumed = TableEmbedder("separable", table.rows)  # a new run, the same embedder settings
    counted: list[int] = []
    monkeypatch.setattr(resumed, "embed", lambda paths, *, progress: counted.append(len(paths)) or oracle[
        [int(np.flatnonzero(toy.samples["path"].to_numpy() == Path(p).name)[0]) for p in paths]])  # fmt: skip
    features, _ = probe_module.cached_embeddings(resumed, toy, context=context(tmp_path), what="test")
    assert counted == [100, 36]  # only the two parts the killed run never wrote
    np.testing.assert_array_equal(features, oracle.astype(np.float32))
    assert not list((tmp_path / "cache" / "embeddings").glob("*.parts"))  # whole file written, parts dropped


class ShuffledEngine:
    """An engine whose batches come back out of order (as Ray's do), each answered by the embedder;
    it can die after ``die_after`` batches."""

    def __init__(self, *, die_after: int | None = None) -> None:
        self.asked: list[int] = []
        self.die_after = die_after

    def batches(self, embedder, paths, *, batch_size, progress=None):
        self.asked.append(len(paths))
        starts = np.random.default_rng(0).permutation(np.arange(0, len(paths), batch_size))
        for k, start in enumerate(starts.tolist()):
            if self.die_after is not None and k == self.die_after:
                raise Killed
            positions = list(range(start, min(start + batch_size, len(paths))))
            rows = TableEmbedder.embed(embedder, [paths[p] for p in positions], progress=False)
            yield positions, [row.tolist() for row in rows]


def test_on_an_engine_finished_parts_are_kept_when_the_run_dies(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(probe_module, "PART", 100)
    table = separable(toy)
    table.spec_text, table.batch_size = "table", 25  # an embedder an engine can run
    oracle = TableEmbedder.embed(table, [toy.root / p for p in toy.samples["path"]], progress=False)
    dying = ShuffledEngine(die_after=12)  # 12 of 14 batches answered, in shuffled order
    with pytest.raises(Killed):
        probe_module.cached_embeddings(
            table,
            toy,
            context=PredictContext(seed=0, cache_dir=tmp_path / "cache", progress=False, engine=dying),
            what="t",
        )
    parts = sorted((tmp_path / "cache" / "embeddings").glob("*.parts/*.npy"))
    kept = sum(len(np.load(part)) for part in parts)
    assert 0 < len(parts) < 4  # only parts whose every image was answered were written
    engine = ShuffledEngine()
    features, _ = probe_module.cached_embeddings(
        table,
        toy,
        context=PredictContext(seed=0, cache_dir=tmp_path / "cache", progress=False, engine=engine),
        what="t",
    )
    assert engine.asked == [336 - kept]  # the kept parts' images are not asked again
    np.testing.assert_array_equal(features, oracle.astype(np.float32))
