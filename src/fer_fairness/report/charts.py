"""The report's charts, drawn with matplotlib as inline SVG (vector, text kept as text, no network, no script).

Every chart is drawn from the records and run facts the JSON report holds, never from private state,
so the HTML shows exactly what the JSON says. Names reach the page only as SVG text that matplotlib's
XML writer escapes, and in titles escaped here.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from fer_fairness.counts import GROUP_JOIN  # noqa: E402

# Okabe-Ito colours chosen to stay apart under deuteranopia, protanopia and tritanopia (blue, grey, vermillion),
# and a shape per verdict as well, so nothing rests on colour alone. The table's glyphs match the shapes.
COLOURS = {"PASS": "#0072B2", "FAIL": "#D55E00", "INCONCLUSIVE": "#999999"}
MARKERS = {"PASS": "o", "FAIL": "X", "INCONCLUSIVE": "D"}
REFERENCE = {"color": "#000000", "marker": "s"}
FOREST_ROWS = 40  # the largest disparities (plus every FAIL): a forest of hundreds of rows is unreadable
# Names (groups, models, datasets) are data, not markup: a '$' must print as '$', never start mathtext
# (whose parse errors crashed the report after the tests ran) nor reach a user's usetex setting.
# 'svg.fonttype': 'none' keeps text as <text> (sharp, searchable, selectable); a fixed hash salt keeps the
# page the same from run to run.
# One font named (the one matplotlib measures with), not its whole fallback list on every text.
LITERAL_TEXT = {
    "text.usetex": False,
    "text.parse_math": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "fer",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
}


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str  # an <svg> element, escaped by matplotlib, with a <title> for screen readers


def _literal(draw):
    """Run a chart function with every Text it creates, tick labels drawn at savefig included, literal."""

    @functools.wraps(draw)
    def literal(*args, **kwargs):
        with plt.rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)

    return literal


def _svg(figure, title: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # the XML prolog and DOCTYPE do not belong inside HTML
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)  # a timestamp, a URL
    text = re.sub(r'\s(width|height)="[\d.]+pt"', "", text, count=2)  # scale with the page (viewBox kept)
    head = text.index(">") + 1
    label = html.escape(title, quote=True)
    return f'{text[: head - 1]} role="img" aria-label="{label}">\n<title>{label}</title>{text[head:]}'


def _scoped(svg: str, prefix: str) -> str:
    """Prefix every referenced id (and each reference to it), so charts inlined in one page never share one.

    Ids nothing refers to (matplotlib names every group) are dropped: they only add bytes.
    """
    referenced = set(re.findall(r"#([\w.-]+)", svg))
    svg = re.sub(r'\sid="([^"]+)"', lambda m: m.group(0) if m.group(1) in referenced else "", svg)
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    if not ids:
        return svg
    pattern = re.compile(r'(\sid="|#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", svg)


def _number(value: Any) -> float:
    """A JSON number as a float: null is NaN, the strings "inf" / "-inf" are infinities."""
    return math.nan if value is None else float(value)


def _by(records: Iterable[dict[str, Any]], criterion: str) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["criterion"] == criterion:
            grouped[(r["model"], r["dataset"], r["attribute"])].append(r)
    return grouped


def _verdict_legend(axes, verdicts: Iterable[str], extra: Iterable = (), **kwargs) -> None:
    handles = [
        Line2D([], [], linestyle="", marker=MARKERS[v], color=COLOURS[v], markersize=7, label=v)
        for v in ("FAIL", "INCONCLUSIVE", "PASS")
        if v in set(verdicts)
    ]
    axes.legend(handles=[*handles, *extra], fontsize=8, **kwargs)


@_literal
def group_accuracy(records: list[dict[str, Any]]) -> list[Chart]:
    """Per model x dataset x grouping: each group's accuracy with its corrected interval and the floor.

    A group's marker is the verdict of its accuracy gap against its reference (what the chart illustrates);
    reference groups are black squares; a group without a gap test shows its floor verdict.
    """
    gaps = {
        (r["model"], r["dataset"], r["attribute"], r["group"]): r for r in records if r["criterion"] == "accuracy_gap"
    }
    references = {(r["model"], r["dataset"], r["attribute"], r["reference"]) for r in gaps.values()}
    charts = []
    for (model, dataset, attribute), rows in sorted(_by(records, "accuracy_floor").items()):
        rows = [r for r in rows if r["estimate"] is not None]
        if not rows:
            continue
        figure, axes = plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.5))
        shown = set()
        labels = []
        for y, r in enumerate(rows):
            key = (model, dataset, attribute, r["group"])
            estimate, low, high = _number(r["estimate"]), _number(r["ci_low"]), _number(r["ci_high"])
            error = [[estimate - low], [high - estimate]] if not math.isnan(low) else None
            if key in gaps:
                verdict = gaps[key]["verdict"]
                style = {"color": COLOURS[verdict], "marker": MARKERS[verdict]}
                labels.append(f"{r['group']} vs {gaps[key]['reference']}")
                shown.add(verdict)
            elif key in references:
                style = REFERENCE
                labels.append(f"{r['group']} (reference)")
            else:
                style = {"color": COLOURS[r["verdict"]], "marker": MARKERS[r["verdict"]]}
                labels.append(f"{r['group']} (floor)")
                shown.add(r["verdict"])
            axes.errorbar(estimate, y, xerr=error, fmt=style["marker"], color=style["color"], capsize=3)
        floor = axes.axvline(_number(rows[0]["band_low"]), color="grey", linestyle="--", linewidth=1, label="floor")
        extra = [floor]
        if any(label.endswith("(reference)") for label in labels):
            extra.append(Line2D([], [], linestyle="", marker="s", color="#000000", label="reference group"))
        axes.set_yticks(range(len(rows)), labels)
        axes.set_xlim(0, 1)
        axes.set_xlabel("accuracy (corrected interval); marker = verdict of the accuracy gap")
        axes.set_title(f"{model} | {dataset} | {attribute}", fontsize=10)
        _verdict_legend(axes, shown, extra, loc="lower right")
        title = f"Accuracy by {attribute}: {model} on {dataset}"
        charts.append(Chart(title, _svg(figure, title)))
    return charts


def _forest_rows(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per model x dataset: every FAIL, then the other ratios furthest from 1, up to FOREST_ROWS."""
    per_run: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["criterion"] == "confusion_ratio" and r["estimate"] is not None and r["ci_low"] is not None:
            per_run[(r["model"], r["dataset"])].append(r)

    def distance(r):
        estimate = _number(r["estimate"])
        return math.inf if not 0 < estimate < math.inf else abs(math.log(estimate))

    chosen = {}
    for run, rows in per_run.items():
        fails = [r for r in rows if r["verdict"] == "FAIL"]
        drawable = [r for r in rows if r["verdict"] != "FAIL" and _finite_positive(r)]
        rest = sorted(drawable, key=distance, reverse=True)[: max(FOREST_ROWS - len(fails), 0)]
        chosen[run] = sorted(fails + rest, key=distance)  # the largest at the top
    return chosen


def _finite_positive(r: dict[str, Any]) -> bool:
    return all(0 < _number(r[k]) < math.inf for k in ("estimate", "ci_low", "ci_high"))


@_literal
def confusion_forest(records: list[dict[str, Any]]) -> list[Chart]:
    """Per model x dataset: every FAIL and the confusion rate ratios furthest from 1, log scale, band shaded.

    A bound at 0 or infinity (a group with no such confusion) is drawn at the chart's edge with an arrow.
    """
    charts = []
    for (model, dataset), rows in sorted(_forest_rows(records).items()):
        if not rows:
            continue
        band = (_number(rows[0]["band_low"]), _number(rows[0]["band_high"]))
        finite = [v for r in rows for k in ("estimate", "ci_low", "ci_high") if 0 < (v := _number(r[k])) < math.inf]
        finite += [b for b in band if 0 < b < math.inf]
        left, right = min(finite) / 3, max(finite) * 3
        figure, axes = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.5))
        axes.axvspan(*band, color="#e8eef5", label="tolerance band")
        axes.axvline(1.0, color="grey", linewidth=1)
        for y, r in enumerate(rows):
            estimate, low, high = (min(max(_number(r[k]), left), right) for k in ("estimate", "ci_low", "ci_high"))
            error = [[max(estimate - low, 0)], [max(high - estimate, 0)]]
            verdict = r["verdict"]
            axes.errorbar(
                estimate, y, xerr=error, fmt=MARKERS[verdict], color=COLOURS[verdict], capsize=2, markersize=5
            )
            if low <= left:
                axes.annotate("◀", (left, y), fontsize=7, color=COLOURS[verdict], va="center", ha="left")
            if high >= right:
                axes.annotate("▶", (right, y), fontsize=7, color=COLOURS[verdict], va="center", ha="right")
        axes.set_xscale("log")
        axes.set_xlim(left, right)
        # The log axis labels itself in mathtext ("$10^{-1}$"), which LITERAL_TEXT would print verbatim.
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(NullFormatter())
        labels = [f"{r['attribute']}={r['group']}~{r['reference']} {r['detail']}" for r in rows]
        axes.set_yticks(range(len(rows)), labels, fontsize=7)
        axes.set_xlabel("rate ratio P(pred | true, group) / P(pred | true, reference), corrected interval")
        axes.set_title(f"{model} | {dataset}: every FAIL and the ratios furthest from 1 ({len(rows)})", fontsize=10)
        band_patch = plt.Rectangle((0, 0), 1, 1, color="#e8eef5", label="tolerance band")
        _verdict_legend(axes, {r["verdict"] for r in rows}, [band_patch], loc="lower right")
        title = f"Confusion rate ratios: {model} on {dataset}"
        charts.append(Chart(title, _svg(figure, title)))
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
        for kind, colour in zip(kinds, ("#CC79A7", "#E69F00", "#56B4E9"), strict=False):
            axes.barh(table["groups"], shares[kind], left=left, color=colour, label=kind)
            left += shares[kind]
        axes.set_xlabel("share of images without a label")
        axes.set_title(f"{table['model']} | {table['dataset']} | {table['attribute']}", fontsize=10)
        axes.legend(fontsize=8)
        title = f"Non-answers by {table['attribute']}: {table['model']} on {table['dataset']}"
        charts.append(Chart(title, _svg(figure, title)))
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
        figure, axes = plt.subplots(
            1, len(groups), figsize=(3.4 * len(groups) + 1.6, 3.9), squeeze=False, layout="constrained"
        )
        image = None
        for axis, g in zip(axes[0], range(len(groups)), strict=True):
            matrix = counts[g][:, shown]
            rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
            # Cells as vector rectangles (imshow would embed a bitmap); viridis: perceptually uniform, colour-blind
            # safe; in ten steps, so each colour reads as a tenth and the colour bar stays vector too.
            image = axis.pcolormesh(rates, vmin=0, vmax=1, cmap=plt.get_cmap("viridis", 10))
            axis.set_xticks(np.arange(len(shown)) + 0.5, [outcomes[i] for i in shown], rotation=90, fontsize=7)
            axis.set_yticks(np.arange(len(labels)) + 0.5, labels if g == 0 else [], fontsize=7)
            axis.invert_yaxis()
            axis.set_aspect("equal")
            axis.set_title(f"{groups[g]} (n={int(matrix.sum())})", fontsize=9)
            if g == 0:
                axis.set_ylabel("true emotion", fontsize=8)
            axis.set_xlabel("predicted", fontsize=8)
        if image is not None:
            figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="P(predicted | true)")
        figure.suptitle(
            f"{table['model']} | {table['dataset']} | {table['attribute']}: P(predicted | true)", fontsize=10
        )
        title = f"Confusions by {table['attribute']}: {table['model']} on {table['dataset']}"
        charts.append(Chart(title, _svg(figure, title)))
    return charts


def all_charts(*, records: list[dict[str, Any]], facts: dict[str, Any]) -> dict[str, list[Chart]]:
    """Every chart the page shows, by section, each with ids of its own."""
    sections = {
        "accuracy": group_accuracy(records),
        "forest": confusion_forest(records),
        "non_answers": non_answer_rates(facts),
        "heatmaps": confusion_heatmaps(facts),
    }
    return {
        key: [replace(chart, svg=_scoped(chart.svg, f"{key}{i}-")) for i, chart in enumerate(charts)]
        for key, charts in sections.items()
    }
