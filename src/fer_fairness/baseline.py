"""An earlier run as the baseline of a release: its fairness.json, and the per-sample outcomes beside it.

``--fairness-baseline PATH`` (a fairness.json, or the folder holding one) adds the ``no_regression``
tests: each gap of the candidate run against the same gap of the baseline. When both runs answered
the same images (same sample ids, same image bytes, from the outcomes file each run writes beside
its fairness.json) the comparison is paired; otherwise it uses the baseline's count tensors, which
every fairness.json holds, and is independent.

A file this release cannot read (another major schema version, or not a fairness.json at all) is a
clear error, never a silent comparison with something else.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_fairness.errors import ConfigError

REPORT_NAME = "fairness.json"
OUTCOMES_NAME = "fairness-outcomes.csv.gz"  # beside fairness.json; its sha256 is in the JSON's run facts
OUTCOME_FIELDS = ("model", "dataset", "sample_id", "image", "outcome")


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """What a baseline run holds that a comparison needs, keyed by names of that run."""

    source: str  # the fairness.json, for messages
    created: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    counts: dict[tuple[str, str, str], dict[str, Any]]  # (model, dataset, attribute) -> the JSON counts entry
    records: dict[tuple, dict[str, Any]]  # (model, dataset, criterion, attribute, group, reference, detail)
    outcomes_path: Path | None = None  # the per-sample outcomes, when the baseline kept them
    fingerprints: dict[str, str] = field(default_factory=dict)  # dataset -> fingerprint

    def model_for(self, candidate: str) -> str | None:
        """The baseline model a candidate is compared with: the same name, else the baseline's only model."""
        if candidate in self.models:
            return candidate
        return self.models[0] if len(self.models) == 1 else None

    def gap(self, model: str, dataset: str, criterion: str, attribute: str, group: str, reference: str):
        return self.records.get((model, dataset, criterion, attribute, group, reference, None))

    def outcomes(self, model: str, dataset: str):
        """The baseline's per-sample outcomes of one model x dataset (a DataFrame), or None."""
        if self.outcomes_path is None:
            return None
        table = _read_outcomes(self.outcomes_path)
        rows = table[(table["model"] == model) & (table["dataset"] == dataset)]
        return None if rows.empty else rows.reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "created": self.created,
            "models": list(self.models),
            "paired": bool(self.outcomes_path),
        }


def load_baseline(path: Path) -> Baseline:
    """Read and check a baseline; every problem is a ConfigError naming the file."""
    from fer_fairness.report.json_report import SCHEMA_VERSION

    file = path / REPORT_NAME if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"baseline {path}: no {REPORT_NAME} there; give an earlier run's {REPORT_NAME} or its folder")
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"baseline {file}: not a readable JSON file ({error})") from None
    if not isinstance(document, dict) or "schema_version" not in document or "tests" not in document:
        raise ConfigError(f"baseline {file}: not a fer-fairness report (no schema_version and tests)")
    version = str(document["schema_version"])
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ConfigError(
            f"baseline {file}: schema version {version}, which this release (schema {SCHEMA_VERSION}) cannot read; "
            "re-run the baseline model with this release to make a baseline"
        )
    run = document.get("run") or {}
    counts = {}
    for entry in run.get("counts", []):
        counts[(entry["model"], entry["dataset"], entry["attribute"])] = entry
    if not counts:
        raise ConfigError(f"baseline {file}: holds no count tensors (run.counts); it cannot serve as a baseline")
    records = {
        (r["model"], r["dataset"], r["criterion"], r["attribute"], r["group"], r["reference"], r.get("detail")): r
        for r in document["tests"]
    }
    outcomes_path = None
    kept = run.get("outcomes")
    if kept:
        outcomes_path = file.parent / kept["file"]
        if not outcomes_path.is_file():
            raise ConfigError(
                f"baseline {file}: its per-sample outcomes {outcomes_path.name} are missing beside it; copy them "
                "with the report (or remove run.outcomes from the JSON to compare without pairing)"
            )
        digest = hashlib.sha256(outcomes_path.read_bytes()).hexdigest()
        if digest != kept["sha256"]:
            raise ConfigError(
                f"baseline {file}: {outcomes_path.name} does not match the report (sha256 {digest[:12]}, the report "
                f"says {kept['sha256'][:12]}); it belongs to another run"
            )
    return Baseline(
        source=str(file),
        created=str(run.get("created", "")),
        models=tuple(sorted({m for m, _, _ in counts})),
        datasets=tuple(sorted({d for _, d, _ in counts})),
        counts=counts,
        records=records,
        outcomes_path=outcomes_path,
        fingerprints={name: d.get("fingerprint", "") for name, d in (run.get("datasets") or {}).items()},
    )


@functools.lru_cache(maxsize=4)  # one read per file, shared by every model x dataset (callers never mutate it)
def _read_outcomes(path: Path):
    import pandas as pd

    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in OUTCOME_FIELDS if c not in table.columns]
    if missing:
        raise ConfigError(f"baseline outcomes {path}: missing column(s) {', '.join(missing)}")
    return table
