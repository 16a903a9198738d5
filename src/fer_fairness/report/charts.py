"""The report's charts, drawn with matplotlib and embedded as PNG data URIs (no network, no script).

Every chart is drawn from the records and run facts the JSON report holds, never from private state,
so the HTML shows exactly what the JSON says. Group names reach the page only inside the images and
in alt text that Jinja escapes.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_fairness.counts import GROUP_JOIN  # noqa: E402

COLOURS = {"PASS": "#2e7d32", "FAIL": "#c62828", "INCONCLUSIVE": "#b8860b"}
FOREST_ROWS = 40  # the largest disparities only: a forest of hundreds of rows is unreadable
# Names (groups, models, datasets) are data, not markup: a '$' must print as '$', never start mathtext
# (whose parse errors crashed the report after the tests ran) nor reach a user's usetex setting.
LITERAL_TEXT = {"text.usetex": False, "text.parse_math": False}


@dataclass(frozen=True)
class Chart:
    title: str
    uri: str  # data:image/png;base64,...


def _literal(draw):
    """Run a chart function with every Text it creates, tick labels drawn at savefig included, literal."""

    @functools.wraps(draw)
    def literal(*args, **kwargs):
        with plt.rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)

    return literal


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: Any) -> float:
    """A JSON number as a float: null is NaN, the strings "inf" / "-inf" are infinities."""
    return math.nan if value is None else float(value)


def _by(records: Iterable[dict[str, Any]], criterion: str) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["criterion"] == criterion:
            grouped[(r["model"], r["dataset"], r["attribute"])].append(r)
    return grouped


@_literal
def group_accuracy(records: list[dict[str, Any]]) -> list[Chart]:
    """Per model x dataset x grouping: each group's accuracy with its corrected interval and the floor."""
    charts = []
    for (model, dataset, attribute), rows in sorted(_by(records, "accuracy_floor").items()):
        rows = [r for r in rows if r["estimate"] is not None]
        if not rows:
            continue
        figure, axes = plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.2))
        for y, r in enumerate(rows):
            estimate, low, high = _number(r["estimate"]), _number(r["ci_low"]), _number(r["ci_high"])
            error = [[estimate - low], [high - estimate]] if not math.isnan(low) else None
            axes.errorbar(estimate, y, xerr=error, fmt="o", color=COLOURS[r["verdict"]], capsize=3)
        axes.axvline(_number(rows[0]["band_low"]), color="grey", linestyle="--", linewidth=1, label="floor")
        axes.set_yticks(range(len(rows)), [r["group"] for r in rows])
        axes.set_xlim(0, 1)
        axes.set_xlabel("accuracy (corrected interval)")
        axes.set_title(f"{model} | {dataset} | {attribute}", fontsize=10)
        axes.legend(loc="lower right", fontsize=8)
        charts.append(Chart(f"Accuracy by {attribute}: {model} on {dataset}", _png(figure)))
    return charts


@_literal
def confusion_forest(records: list[dict[str, Any]]) -> list[Chart]:
    """Per model x dataset: the confusion rate ratios furthest from 1, log scale, band shaded."""
    per_run: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["criterion"] == "confusion_ratio" and r["estimate"] is not None and r["ci_low"] is not None:
            if 0 < _number(r["estimate"]) < math.inf and 0 < _number(r["ci_low"]) and _number(r["ci_high"]) < math.inf:
                per_run[(r["model"], r["dataset"])].append(r)
    charts = []
    for (model, dataset), rows in sorted(per_run.items()):
        rows = sorted(rows, key=lambda r: abs(math.log(_number(r["estimate"]))), reverse=True)[:FOREST_ROWS]
        rows.reverse()  # the largest at the top
        figure, axes = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.3))
        band = (_number(rows[0]["band_low"]), _number(rows[0]["band_high"]))
        axes.axvspan(*band, color="#e8f5e9", label="tolerance band")
        axes.axvline(1.0, color="grey", linewidth=1)
        for y, r in enumerate(rows):
            estimate = _number(r["estimate"])
            error = [[estimate - _number(r["ci_low"])], [_number(r["ci_high"]) - estimate]]
            axes.errorbar(estimate, y, xerr=error, fmt="s", color=COLOURS[r["verdict"]], capsize=2, markersize=4)
        axes.set_xscale("log")
        labels = [f"{r['attribute']}={r['group']}~{r['reference']} {r['detail']}" for r in rows]
        axes.set_yticks(range(len(rows)), labels, fontsize=7)
        axes.set_xlabel("rate ratio P(pred | true, group) / P(pred | true, reference), corrected interval")
        axes.set_title(f"{model} | {dataset}: the {len(rows)} ratios furthest from 1", fontsize=10)
        axes.legend(loc="lower right", fontsize=8)
        charts.append(Chart(f"Confusion rate ratios: {model} on {dataset}", _png(figure)))
    return charts


@_literal
def non_answer_rates(facts: dict[str, Any]) -> list[Chart]:
    """Per model x dataset x attribute: the share of refused, unparseable and error outcomes by group."""
    charts = []
    for table in facts.get("counts", []):
        counts = np.asarray(table["counts"], dtype=float)  # (G, T, O)
        kinds = [o for o in ("refused", "unparseable", "error") if o in table["outcomes"]]
        totals = counts.sum(axis=(1, 2))
        shares = {k: counts[:, :, table["outcomes"].index(k)].sum(axis=1) / np.maximum(totals, 1) for k in kinds}
        if not any(share.any() for share in shares.values()):
            continue  # a model that always answered: nothing to draw (the criterion's table says so)
        figure, axes = plt.subplots(figsize=(6.5, 0.45 * len(table["groups"]) + 1.2))
        left = np.zeros(len(table["groups"]))
        for kind, colour in zip(kinds, ("#6a1b9a", "#ef6c00", "#455a64"), strict=False):
            axes.barh(table["groups"], shares[kind], left=left, color=colour, label=kind)
            left += shares[kind]
        axes.set_xlabel("share of images without a label")
        axes.set_title(f"{table['model']} | {table['dataset']} | {table['attribute']}", fontsize=10)
        axes.legend(fontsize=8)
        charts.append(
            Chart(f"Non-answers by {table['attribute']}: {table['model']} on {table['dataset']}", _png(figure))
        )
    return charts


@_literal
def confusion_heatmaps(facts: dict[str, Any]) -> list[Chart]:
    """Per model x dataset x attribute: one row-normalised confusion matrix per group, side by side.

    Single attributes only: an intersection's cells would make a strip of a dozen unreadable
    panels, and its tensor stays in the JSON for anyone who wants it.
    """
    charts = []
    for table in facts.get("counts", []):
        if GROUP_JOIN in table["attribute"]:
            continue
        counts = np.asarray(table["counts"], dtype=float)
        groups, labels, outcomes = table["groups"], table["labels"], table["outcomes"]
        shown = [i for i, o in enumerate(outcomes) if o in labels or counts[:, :, i].any()]
        figure, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups) + 0.8, 3.4), squeeze=False)
        for axis, g in zip(axes[0], range(len(groups)), strict=True):
            matrix = counts[g][:, shown]
            rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
            axis.imshow(rates, vmin=0, vmax=1, cmap="Blues")
            axis.set_xticks(range(len(shown)), [outcomes[i][:5] for i in shown], rotation=90, fontsize=7)
            axis.set_yticks(range(len(labels)), [label[:5] for label in labels] if g == 0 else [], fontsize=7)
            axis.set_title(f"{groups[g]} (n={int(matrix.sum())})", fontsize=9)
        figure.suptitle(
            f"{table['model']} | {table['dataset']} | {table['attribute']}: P(predicted | true)", fontsize=10
        )
        charts.append(
            Chart(f"Confusions by {table['attribute']}: {table['model']} on {table['dataset']}", _png(figure))
        )
    return charts


def all_charts(*, records: list[dict[str, Any]], facts: dict[str, Any]) -> dict[str, list[Chart]]:
    """Every chart the page shows, by section."""
    return {
        "accuracy": group_accuracy(records),
        "forest": confusion_forest(records),
        "non_answers": non_answer_rates(facts),
        "heatmaps": confusion_heatmaps(facts),
    }
