"""The evaluation cache: a warm run reads exactly what a fresh evaluation computes, and any change misses."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import fer_fairness
from fer_fairness import evaluation_cache, pipeline
from fer_fairness.config import parse_thresholds
from fer_fairness.criteria import catalogue
from fer_fairness.criteria.evaluate import evaluate
from fer_fairness.criteria.records import Record
from tests.criteria._build import policy, table
from tests.studies import study_state, write_study

LABELS = ("anger", "happiness")
ONLY = ("accuracy_gap", "accuracy_floor", "association")  # a pair, a group and an attribute (seeded) criterion


def _policy(**settings):
    return policy(only=ONLY, settings=settings)


def _tables(*, anger_right: int = 40) -> list:
    """Two groups; ``anger_right`` of group B's 50 anger faces read right (the rest as happiness)."""
    counts = {
        "A": {"anger": {"anger": 45, "happiness": 5}, "happiness": {"happiness": 50}},
        "B": {
            "anger": {"anger": anger_right, "happiness": 50 - anger_right},
            "happiness": {"happiness": 48, "anger": 2},
        },
        "C": {"anger": {"anger": 3}, "happiness": {"happiness": 2}},  # below min_group_size: untested records
    }
    return [table(counts, labels=LABELS, reference="A")]


class Counting:
    """The real evaluation, counting its calls (the oracle and a probe of whether the cache was read)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, tables, *, thresholds, seed):
        self.calls += 1
        return evaluate(tables, thresholds=thresholds, seed=seed)


def _same(a: Record, b: Record) -> None:
    """Field by field, types included; NaN equals NaN."""
    for f in dataclasses.fields(Record):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert type(x) is type(y), (a.test_id, f.name, x, y)
        if isinstance(x, float) and math.isnan(x):
            assert math.isnan(y), (a.test_id, f.name)
        elif f.name == "rates":
            assert list(x) == list(y) and all(
                u == v or (math.isnan(u) and math.isnan(v)) for u, v in zip(x.values(), y.values(), strict=True)
            )
        else:
            assert x == y, (a.test_id, f.name, x, y)


def _run(tables, cache_dir, compute, *, thresholds=None, seed=0):
    return evaluation_cache.evaluate_cached(
        tables, thresholds=thresholds or _policy(), seed=seed, cache_dir=cache_dir, compute=compute
    )


def test_a_warm_run_reads_records_equal_to_a_fresh_evaluation_field_by_field(tmp_path):
    compute = Counting()
    cold = _run(_tables(), tmp_path, compute)
    warm = _run(_tables(), tmp_path, compute)  # tables built anew: equal content, other objects
    assert compute.calls == 1
    oracle = evaluate(_tables(), thresholds=_policy(), seed=0)
    assert len(warm) == len(cold) == len(oracle) > 0
    assert any(r.estimate is None for r in oracle) and any(r.estimate is not None for r in oracle)
    for w, c, o in zip(warm, cold, oracle, strict=True):
        _same(w, o)
        _same(c, o)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(dict(tables=_tables(anger_right=39)), id="one face's outcome"),
        pytest.param(dict(thresholds=_policy(alpha=0.1)), id="alpha"),
        pytest.param(dict(thresholds=policy(only=ONLY, accuracy_gap={"tolerance": 0.07})), id="a tolerance"),
        pytest.param(dict(seed=1), id="seed"),
    ],
)
def test_a_change_in_any_input_misses_and_is_evaluated_afresh(tmp_path, change):
    compute = Counting()
    _run(_tables(), tmp_path, compute)
    inputs = {"tables": _tables(), "thresholds": _policy(), "seed": 0, **change}
    records = _run(inputs["tables"], tmp_path, compute, thresholds=inputs["thresholds"], seed=inputs["seed"])
    assert compute.calls == 2
    for r, o in zip(records, evaluate(**inputs), strict=True):
        _same(r, o)
    assert len(list((tmp_path / "evaluations").glob("*.pickle"))) == 2


def _with_rows(brightness: float) -> list:
    rows = pd.DataFrame(
        {
            "group": pd.Categorical(["A", "B", "B"]),
            "correct": np.array([True, False, True]),
            "subject_id": np.arange(3),
            "brightness": np.array([0.5, brightness, 0.25]),
        }
    )
    return [dataclasses.replace(t, rows=rows) for t in _tables()]


def test_a_changed_covariate_value_gives_another_key():
    key = evaluation_cache.cache_key
    same = key(_with_rows(0.75), thresholds=_policy(), seed=0)
    assert same is not None and same == key(_with_rows(0.75), thresholds=_policy(), seed=0)
    assert key(_with_rows(0.75 + 1e-12), thresholds=_policy(), seed=0) != same
    assert key(_tables(), thresholds=_policy(), seed=0) != same


def test_memo_caches_filled_by_an_evaluation_do_not_change_the_key():
    tables = _tables()
    before = evaluation_cache.cache_key(tables, thresholds=_policy(), seed=0)
    evaluate(tables, thresholds=_policy(), seed=0)
    assert tables[0].tensor.memo  # the evaluation did fill it: the check below is not vacuous
    assert evaluation_cache.cache_key(tables, thresholds=_policy(), seed=0) == before


def test_a_user_criterion_disables_the_cache(tmp_path):
    mine = fer_fairness.rate_gap("mine", catalogue.correct, metric="accuracy difference, again")
    (mine,) = catalogue.check([mine], source="conftest", known=catalogue.BUILTIN)
    off = {c.name: {"enabled": False} for c in catalogue.BUILTIN if c.name not in ONLY}
    thresholds = parse_thresholds({"criteria": off}, source="test", criteria=[*catalogue.BUILTIN, mine])
    compute = Counting()
    _run(_tables(), tmp_path, compute, thresholds=thresholds)
    _run(_tables(), tmp_path, compute, thresholds=thresholds)
    assert compute.calls == 2
    assert not (tmp_path / "evaluations").exists()


def test_a_corrupt_entry_is_recomputed_and_rewritten(tmp_path):
    compute = Counting()
    _run(_tables(), tmp_path, compute)
    (entry,) = (tmp_path / "evaluations").glob("*.pickle")
    entry.write_bytes(b"\x80\x05garbage")
    records = _run(_tables(), tmp_path, compute)
    assert compute.calls == 2
    for r, o in zip(records, evaluate(_tables(), thresholds=_policy(), seed=0), strict=True):
        _same(r, o)
    _run(_tables(), tmp_path, compute)  # the rewritten entry is read
    assert compute.calls == 2


def test_no_cache_dir_writes_nothing_and_always_evaluates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compute = Counting()
    _run(_tables(), None, compute)
    _run(_tables(), None, compute)
    assert compute.calls == 2
    assert list(tmp_path.iterdir()) == []


def test_a_table_the_key_cannot_describe_is_not_cached(tmp_path):
    tables = [dataclasses.replace(t, rows=object()) for t in _tables()]
    assert evaluation_cache.cache_key(tables, thresholds=_policy(), seed=0) is None
    compute = Counting()
    _run(tables, tmp_path, compute)
    assert compute.calls == 1 and not (tmp_path / "evaluations").exists()


def test_only_the_newest_entries_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation_cache, "KEEP", 2)
    compute = Counting()
    for seed in range(4):
        _run(_tables(), tmp_path, compute, seed=seed)
    assert len(list((tmp_path / "evaluations").glob("*.pickle"))) == 2
    _run(_tables(), tmp_path, compute, seed=3)  # the newest is still there
    assert compute.calls == 4


def test_a_warm_pipeline_run_does_not_evaluate_again(tmp_path, monkeypatch):
    cells = [({"race": r}, "anger", o, k) for r in ("Black", "White") for o, k in (("anger", 30), ("disgust", 5))]
    manifest, predictions = write_study(tmp_path, cells)
    compute = Counting()
    monkeypatch.setattr(pipeline, "evaluate", compute)

    cold, _ = pipeline.run(study_state(tmp_path, manifest, predictions))
    warm, _ = pipeline.run(study_state(tmp_path, manifest, predictions))
    assert compute.calls == 1 and len(cold) > 0
    for w, c in zip(warm, cold, strict=True):
        _same(w, c)
