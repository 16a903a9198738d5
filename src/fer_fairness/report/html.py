"""fairness.html: one self-contained page (inline CSS, no network), every string escaped by Jinja2."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from fer_fairness._cache import atomic_path
from fer_fairness.config import CRITERIA

VERDICTS = ("FAIL", "INCONCLUSIVE", "PASS")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("fer_fairness", "report/templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    # Interval bounds: floating-point dust around an exact 0 (a bootstrap bound) reads as 0. Not for
    # p-values, where 1e-26 is information.
    env.filters["bound"] = lambda v: _num(0.0 if isinstance(v, float) and abs(v) < 1e-12 else v)
    env.filters["percent"] = lambda value: "" if value is None else f"{value * 100:.4g}%"
    return env


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value in ("inf", "-inf"):  # how the JSON record spells infinity
        value = float(value)
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 10 ** -(digits - 1) and value != 0 else f"{value:.{digits}f}"
    return str(value)


def _matrix(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdict counts per (model, dataset) x criterion."""
    cells: dict[tuple[str, str], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for r in records:
        cells[(r["model"], r["dataset"])][r["criterion"]][r["verdict"]] += 1
    present = {r["criterion"] for r in records}
    criteria = [c for c in CRITERIA if c in present] + sorted(present - set(CRITERIA))
    return {"criteria": criteria, "rows": [(m, d, cells[(m, d)]) for (m, d) in sorted(cells)]}


def _not_evaluated(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (model, dataset, attribute, groups) where some sample's answer never arrived; [] when all did."""
    rows = []
    for model, datasets in facts.get("not_evaluated", {}).items():
        for dataset, attributes in datasets.items():
            for attribute, groups in attributes.items():
                if any(groups.values()):
                    rows.append({"model": model, "dataset": dataset, "attribute": attribute, "groups": groups})
    return rows


def render_html(*, records: list[dict[str, Any]], facts: dict[str, Any], decision: dict[str, Any] | None = None) -> str:
    by_criterion: dict[str, list[dict[str, Any]]] = {name: [] for name in CRITERIA}  # the policy's order
    for r in sorted(records, key=lambda r: (VERDICTS.index(r["verdict"]), r["test_id"])):
        by_criterion.setdefault(r["criterion"], []).append(r)
    by_criterion = {name: rows for name, rows in by_criterion.items() if rows}
    from fer_fairness.report.charts import all_charts  # matplotlib loads only when a page is drawn

    template = _environment().get_template("report.html.j2")
    return template.render(
        charts=all_charts(records=records, facts=facts),
        facts=facts,
        totals=Counter(r["verdict"] for r in records),
        decision=decision,
        not_evaluated=_not_evaluated(facts),
        matrix=_matrix(records),
        by_criterion=dict(by_criterion),
        inconclusive=[r for r in records if r["verdict"] == "INCONCLUSIVE"],
        verdicts=VERDICTS,
    )


def write_html(
    path: Path, *, records: list[dict[str, Any]], facts: dict[str, Any], decision: dict[str, Any] | None = None
) -> Path:
    page = render_html(records=records, facts=facts, decision=decision)
    with atomic_path(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return path
