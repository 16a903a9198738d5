"""Hooks a project implements in its ``conftest.py`` (or a pytest plugin) to bring its own parts.

They are called once, when pytest configures the run, before any fairness test is collected (test
ids come from the data, so the models, datasets and criteria must be known first). A conftest at
the rootdir, or in the folder of the tests being run, is seen; a conftest deeper down is loaded too
late. Each returns what it adds; what it returns is checked and a mistake is one usage line.

Example (a complete conftest.py)::

    import fer_fairness

    def predict(images):  # a list of PIL images -> one label per image
        return [my_net.classify(image) for image in images]

    def pytest_fairness_models(config):
        return {"my-model": fer_fairness.BatchModel("my-model", predict, version="2.3.0")}

    def pytest_fairness_datasets(config):
        return {"my-faces": lambda spec: fer_fairness.manifest("data/faces.csv", name="my-faces")}

and then ``pytest fairness_tests --fairness-model my-model --fairness-dataset my-faces``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest


def pytest_fairness_models(config: pytest.Config) -> Mapping[str, Any]:
    """Models this project adds: ``{kind: model}``, each a ready model object (anything with ``name``,
    ``describe()`` and ``predict(dataset, context=...)``, e.g. a ``fer_fairness.BatchModel``) or a factory
    called with the parsed ``fer_fairness.Spec`` (so ``--fairness-model my-model:v2?batch_size=8`` reaches
    it). Select one with ``--fairness-model KIND``."""


def pytest_fairness_datasets(config: pytest.Config) -> Mapping[str, Any]:
    """Datasets this project adds: ``{kind: dataset}``, each a ready ``fer_fairness.Dataset`` or a factory
    called with the parsed ``fer_fairness.Spec`` (and, where its signature asks for them, ``cache_dir``,
    ``seed`` and ``progress``) that returns one. Select one with ``--fairness-dataset KIND``."""


def pytest_fairness_criteria(config: pytest.Config) -> Iterable[Any]:
    """Criteria this project adds: ``fer_fairness.Criterion`` objects (``fer_fairness.rate_gap(...)`` builds
    the common kind). Each needs a test marked ``@pytest.mark.fairness("NAME")`` with the ``fairness_record``
    fixture, and takes its band from ``[criteria.NAME]`` in thresholds.toml."""
