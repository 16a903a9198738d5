"""fairness.json: the versioned machine-readable record of a run, and the baseline for later runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Bump on any change a reader would notice: a renamed or removed field, a changed meaning.
SCHEMA_VERSION = "1.0"


def write_json(path: Path, *, records: list[dict[str, Any]], facts: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a report."""
    document = {"schema_version": SCHEMA_VERSION, "run": facts, "tests": records}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path

