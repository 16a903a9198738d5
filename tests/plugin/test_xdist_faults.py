"""``-n 2`` with a flaky API: workers never call the model, and ``fairness.json`` agrees with itself.

Each image's first request meets a fault (500, 429 with and without Retry-After, a hang past the
timeout) or a refusal by script; a second request would be answered. With no retries, every image is
asked once in a serial run, so any request a worker made shows up in the server's count, and any
worker that re-asked would report outcomes the controller's count tensors do not hold.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_fairness.labels import MODEL_NON_ANSWERS, NOT_EVALUATED
from tests.models.fake_api import FakeAPI
from tests.studies import write_study

pytest.importorskip("openai")
pytest.importorskip("xdist")

FAIRNESS_TESTS = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("non_answer_gap")
def test_non_answer_gap(fairness_record):
    gate(fairness_record)

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)
"""
# Faults leave about a third of the samples not evaluated: under this stop, so the run completes.
THRESHOLDS = '[groups]\nintersections = "none"\n[settings]\nmax_not_evaluated = 0.6\n'
FAULTS = ("500", "429:0", "429:none", "hang")


def _project(root: Path) -> tuple[Path, dict[str, str]]:
    """The study and each image's first behaviour (the fault script both runs share)."""
    cells = [({"group": g}, e, e, 25) for g in ("majority", "minority") for e in ("anger", "happiness")]
    manifest, _ = write_study(root, cells)
    (root / "fairness_tests").mkdir()
    (root / "fairness_tests" / "test_api.py").write_text(FAIRNESS_TESTS)
    (root / "thresholds.toml").write_text(THRESHOLDS)
    first = {}
    for n, row in enumerate(pd.read_csv(manifest).itertuples()):
        digest = hashlib.sha256((root / row.path).read_bytes()).hexdigest()
        if n % 4 == 1:
            first[digest] = FAULTS[(n // 4) % len(FAULTS)]
        elif n % 6 == 0 and row.group == "minority":
            first[digest] = "refuse"
        else:
            first[digest] = f"answer:{row.emotion}"
    return manifest, first


def _run(pytester, monkeypatch, *extra: str) -> tuple[int, dict]:
    """One run against a fresh fake API scripted with the faults; (requests it saw, fairness.json)."""
    manifest, first = _project(pytester.path)
    labels = {d: b.split(":")[1] if b.startswith("answer:") else "neutral" for d, b in first.items()}
    with FakeAPI(default=lambda image: f"answer:{labels[image]}") as api:
        for digest, behaviour in first.items():
            api.script(digest, behaviour)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{api.url}/v1")
        result = pytester.runpytest_subprocess(
            "fairness_tests",
            f"--fairness-dataset=manifest:{manifest}?name=faces",
            "--fairness-model=openai:gpt-fake",
            "--fairness-timeout=0.5",
            "--fairness-max-retries=0",
            "-p",
            "no:cacheprovider",
            *extra,
        )
        assert result.ret in (0, 1), result.stdout.str()  # a verdict, not an error
        requests = api.count()
    return requests, json.loads((pytester.path / "reports" / "fairness.json").read_text())


def _from_counts(entry: dict) -> tuple[dict[str, float], dict[str, int]]:
    """Each group's model non-answer rate among its evaluated samples, and how many were evaluated,
    recomputed from a count tensor (group x true label x outcome)."""
    counts = np.asarray(entry["counts"])
    refused = [i for i, o in enumerate(entry["outcomes"]) if o in MODEL_NON_ANSWERS]
    evaluated = [i for i, o in enumerate(entry["outcomes"]) if o != NOT_EVALUATED]
    numerators, sizes = counts[..., refused].sum(axis=(1, 2)), counts[..., evaluated].sum(axis=(1, 2))
    groups = entry["groups"]
    rates = {g: int(k) / int(n) for g, k, n in zip(groups, numerators, sizes, strict=True)}
    return rates, {g: int(n) for g, n in zip(groups, sizes, strict=True)}


def test_two_workers_ask_nothing_and_the_report_agrees_with_its_counts(pytester, monkeypatch):
    serial_requests, serial = _run(pytester, monkeypatch)
    for made in (".fairness-cache", "reports", "fairness_tests", "images"):
        shutil.rmtree(pytester.path / made)  # the same project again, from nothing cached
    parallel_requests, report = _run(pytester, monkeypatch, "-n", "2")
    assert serial_requests == 100  # one request per image: no retries, and the fixed answers read back
    assert parallel_requests == serial_requests

    facts = report["run"]
    (entry,) = [c for c in facts["counts"] if c["attribute"] == "group"]
    counts = np.asarray(entry["counts"])
    error = entry["outcomes"].index(NOT_EVALUATED)
    assert int(counts[..., error].sum()) == 25  # the scripted faults, each a sample not evaluated
    assert facts["counts"] == serial["run"]["counts"]  # the same outcomes as the serial run

    rates, evaluated = _from_counts(entry)
    assert rates["minority"] > 0 and rates["majority"] == 0  # refusals were scripted for one group only
    (record,) = [r for r in report["tests"] if r["criterion"] == "non_answer_gap"]
    assert record["rates"] == pytest.approx(rates, abs=1e-12)
    assert record["n"] == evaluated
    assert record["estimate"] == pytest.approx(rates["minority"] - rates["majority"], abs=1e-12)
