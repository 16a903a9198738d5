"""fairness.json: the versioned machine-readable record of a run, and the baseline for later runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fer_fairness._cache import atomic_path

# Bump on any change a reader would notice: a renamed or removed field, a changed meaning.
SCHEMA_VERSION = "1.0"


def render_json(*, records: list[dict[str, Any]], facts: dict[str, Any], decision: dict[str, Any] | None = None) -> str:
    """The document as text; ``decision`` (report.decision.Decision.to_dict) comes first, then the evidence."""
    document = {"schema_version": SCHEMA_VERSION, "decision": decision, "run": facts, "tests": records}
    return json.dumps(document, indent=2, allow_nan=False) + "\n"  # refuses NaN before touching a file


def write_json(
    path: Path, *, records: list[dict[str, Any]], facts: dict[str, Any], decision: dict[str, Any] | None = None
) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a report."""
    text = render_json(records=records, facts=facts, decision=decision)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path
