"""fairness.md: the decision, the verdict counts and the FAILs, for a CI job summary or a pull request.

GitHub renders Markdown with HTML in it, so every name from the data (models, datasets, groups) is
escaped: a group called ``<b>x|y`` must neither format the page nor add a table column.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fer_fairness._cache import atomic_path
from fer_fairness.report.decision import group_failures, number

MAX_ROWS = 200  # GitHub caps a step summary at 1 MiB; the rest of the FAILs are in fairness.html
# What formats inline text or splits a table cell (GitHub also renders $...$ as math); the rest of the
# punctuation matters only at the start of a line, where no escaped name ever stands.
_PUNCTUATION = re.compile(r"([\\`*_\[\]<>|~&!$])")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape(text: object) -> str:
    """``text`` as literal Markdown inside a line: markup characters backslash-escaped, control characters as #xNN."""
    shown = _CONTROL.sub(lambda match: f"#x{ord(match.group()):02X}", str(text))
    return _PUNCTUATION.sub(r"\\\1", shown)


def _who(record: Mapping[str, Any]) -> str:
    who = f"{record['attribute']}={record['group']}"
    if record.get("reference"):
        who += f" vs {record['reference']}"
    if record.get("detail"):
        who += f" [{record['detail']}]"
    return escape(who)


def _interval(record: Mapping[str, Any]) -> str:
    if record.get("ci_low") is None:
        return "n/a"
    level = f" ({record['confidence'] * 100:.4g}%)" if isinstance(record.get("confidence"), float) else ""
    return f"\\[{number(record['ci_low'])}, {number(record['ci_high'])}\\]{level}"


def render_markdown(*, records: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]) -> str:
    """The summary: decision line, verdict counts, findings (FAILs grouped) and a table of the FAILs."""
    verdicts = Counter(str(r["verdict"]) for r in records)
    lines = [
        "## fer-fairness",
        "",
        f"**{escape(decision['line'])}**",
        "",
        "| Verdict | Tests |",
        "|---|---:|",
        *(f"| {v} | {verdicts.get(v, 0)} |" for v in ("FAIL", "PASS", "INCONCLUSIVE")),
        "",
    ]
    fails = [r for r in records if str(r["verdict"]) == "FAIL"]
    if not fails:
        return "\n".join(lines)
    lines += ["### Findings", ""]
    lines += [f"- {escape(finding.line())}" for finding in group_failures(fails)]
    lines += [
        "",
        "### FAIL tests",
        "",
        "| Criterion | Model | Dataset | Groups | Estimate | Corrected CI | Band | n |",
        "|---|---|---|---|---:|---|---|---|",
    ]
    for r in fails[:MAX_ROWS]:
        band = f"\\[{number(r.get('band_low'))}, {number(r.get('band_high'))}\\]"
        n = escape(", ".join(f"{g}={k}" for g, k in r.get("n", {}).items()))
        lines.append(
            f"| {escape(r['criterion'])} | {escape(r['model'])} | {escape(r['dataset'])} | {_who(r)} "
            f"| {number(r.get('estimate'))} | {_interval(r)} | {band} | {n} |"
        )
    if len(fails) > MAX_ROWS:
        lines += ["", f"... and {len(fails) - MAX_ROWS} more FAIL tests (see fairness.html)."]
    return "\n".join(lines + [""])


def write_markdown(path: Path, text: str, *, step_summary: str | None = None) -> list[Path]:
    """Write ``text`` to ``path`` atomically and append it to ``step_summary`` (GitHub's
    $GITHUB_STEP_SUMMARY) when that is given; returns the files written. OSError is left to the caller."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    written = [path]
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as summary:  # other steps' summaries stay
            summary.write(text + "\n")
        written.append(Path(step_summary))
    return written
