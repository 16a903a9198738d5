"""fer-fairness: a pytest gate for demographic disparities in facial expression recognition.

The public contract, for a project that brings its own model, dataset or criterion (see hooks.py for
the conftest hooks that register them, and the README's "Bring your own model"):

* ``Model``, ``PredictContext``: what a model is and what it is handed; ``BatchModel`` wraps a
  function over a batch of images (labels or per-label scores) into one;
* ``Dataset``, ``manifest``: the sample table every dataset is, and the CSV/Parquet loader that builds one;
* ``Criterion``, ``rate_gap``, ``Threshold``: a fairness criterion, and the builder of the common kind;
* ``Spec``: a parsed spec string (``kind:target?key=value``), what factories are called with;
* ``Record``, ``Verdict``, ``gate``: what a fairness test receives and how it is judged.

Names are imported on first use, so ``import fer_fairness`` (which pytest does for the plugin) loads
no numeric library.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("fer-fairness")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# Public name -> the module that defines it (one source of truth; this is only an index).
_PUBLIC = {
    "Model": "fer_fairness.models._base",
    "PredictContext": "fer_fairness.models._base",
    "BatchModel": "fer_fairness.models._batch",
    "Dataset": "fer_fairness.datasets._table",
    "manifest": "fer_fairness.datasets.manifest",
    "Criterion": "fer_fairness.criteria.catalogue",
    "Threshold": "fer_fairness.criteria.catalogue",
    "rate_gap": "fer_fairness.criteria.catalogue",
    "Spec": "fer_fairness.specs",
    "Record": "fer_fairness.criteria.records",
    "Verdict": "fer_fairness.criteria.verdict",
    "gate": "fer_fairness.gate",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'fer_fairness' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
