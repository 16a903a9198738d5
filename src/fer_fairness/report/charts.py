"""The report's charts as inline SVG (vector, text kept as text, no network, no script).

Every chart is drawn from the records and run facts the JSON report holds, never from private state,
so the HTML shows exactly what the JSON says. The interval charts and heatmaps are written as SVG here
(every name through html.escape); the rare non-answer bars are drawn with matplotlib, whose XML writer
escapes them. Why by hand: these charts are points, bars and text on fixed axes, and matplotlib's
per-artist cost made them about 10 s of a 16,000-test report (the 2 s target; BENCHMARKS.md), where
writing the same elements directly takes about 0.2 s.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fer_fairness.counts import GROUP_JOIN

# Okabe-Ito colours chosen to stay apart under deuteranopia, protanopia and tritanopia (blue, grey, vermillion),
# and a shape per verdict as well, so nothing rests on colour alone. The table's glyphs match the shapes.
COLOURS = {"PASS": "#0072B2", "FAIL": "#D55E00", "INCONCLUSIVE": "#999999"}
MARKERS = {"PASS": "o", "FAIL": "X", "INCONCLUSIVE": "D"}
REFERENCE = {"color": "#000000", "marker": "s"}
BAND = "#e8eef5"  # the tolerance band's shade
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
    svg: str  # an <svg> element with every name escaped, and a <title> for screen readers


def _pyplot():
    """matplotlib's pyplot, imported only when a chart needs it: the import alone took about 1 s of a report."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window; before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def _svg(figure, title: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    _pyplot().close(figure)
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


# The interval charts and heatmaps are drawn as SVG by hand: dots, bars and labels need no layout engine, and
# matplotlib took 0.1-0.4 s per chart (10 s of a 16k-test report for 54 charts).
ROW, PLOT_WIDTH = 20, 420  # px per row, width of the plotting area


@dataclass(frozen=True)
class _Dot:
    label: str
    estimate: float
    low: float  # NaN: no interval
    high: float
    colour: str
    marker: str  # a MARKERS value, or "s" for a reference group


def _marker(marker: str, x: float, y: float, colour: str, size: float = 4.5) -> str:
    if marker == "o":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size}" fill="{colour}"/>'
    if marker == "D":
        return f'<path d="M{x:.1f} {y - size:.1f}l{size} {size}l{-size} {size}l{-size} {-size}z" fill="{colour}"/>'
    if marker == "X":
        return (
            f'<path d="M{x - size:.1f} {y - size:.1f}l{2 * size} {2 * size}M{x + size:.1f} {y - size:.1f}'
            f'l{-2 * size} {2 * size}" stroke="{colour}" stroke-width="3"/>'
        )
    if marker == "-":  # a dashed line (the floor)
        return f'<path d="M{x - 8:.1f} {y:.1f}h16" stroke="{colour}" stroke-dasharray="4 3"/>'
    if marker == "band":
        return f'<rect x="{x - 8:.1f}" y="{y - 5:.1f}" width="16" height="10" fill="{colour}"/>'
    return f'<rect x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size}" height="{2 * size}" fill="{colour}"/>'


def _interval_chart(
    name: str,
    heading: str,
    dots: list[_Dot],
    *,
    position,
    ticks: list[tuple[float, str]],
    xlabel: str,
    shapes: list[str],
    legend: list[tuple[str, str, str]],
    font: float = 8,
) -> Chart:
    """Dots with horizontal intervals, one row each, the first row at the bottom (as matplotlib draws them).

    position maps a value to 0..1 across the plot; shapes are SVG drawn behind the dots (a band, a floor),
    given the plot's left edge, top and height through str.format; legend: (marker, colour, label).
    """
    left = 10 + max((_text_width(d.label, font) for d in dots), default=0)
    top, height = 34, ROW * len(dots) + ROW
    legend_height = 16 * len(legend) + 6
    total = top + max(height, legend_height) + 44
    width = left + PLOT_WIDTH + 150

    def x_of(value: float) -> float:
        return left + PLOT_WIDTH * min(max(position(value), 0.0), 1.0)

    parts = [_svg_text(left + PLOT_WIDTH / 2, 16, heading, 10, text_anchor="middle")]
    parts.append(f'<rect x="{left}" y="{top}" width="{PLOT_WIDTH}" height="{height}" fill="none" stroke="#444"/>')
    parts += [shape.format(left=left, top=top, height=height, x_of=x_of) for shape in shapes]
    for value, text in ticks:
        x = x_of(value)
        parts.append(f'<path d="M{x:.1f} {top + height}v4" stroke="#444"/>')
        parts.append(_svg_text(x, top + height + 14, text, font, text_anchor="middle"))
    parts.append(_svg_text(left + PLOT_WIDTH / 2, top + height + 32, xlabel, font + 1, text_anchor="middle"))
    for i, d in enumerate(dots):
        y = top + height - ROW * (i + 1)
        parts.append(_svg_text(left - 6, y + 3, d.label, font, text_anchor="end"))
        if not math.isnan(d.low):
            a, b = x_of(d.low), x_of(d.high)
            parts.append(
                f'<path d="M{a:.1f} {y}H{b:.1f}M{a:.1f} {y - 3}v6M{b:.1f} {y - 3}v6" stroke="{d.colour}" '
                'stroke-width="1.5"/>'
            )
            if position(d.low) <= 0:  # a bound beyond the axis (0 or infinity): an arrow at the edge
                parts.append(_svg_text(left + 2, y + 3, "◀", 7, fill=d.colour))
            if position(d.high) >= 1:
                parts.append(_svg_text(left + PLOT_WIDTH - 2, y + 3, "▶", 7, fill=d.colour, text_anchor="end"))
        parts.append(_marker(d.marker, x_of(d.estimate), y, d.colour))
    for k, (marker, colour, text) in enumerate(legend):
        y = top + 12 + 16 * k
        parts.append(_marker(marker, left + PLOT_WIDTH + 16, y - 3, colour))
        parts.append(_svg_text(left + PLOT_WIDTH + 26, y, text, font))
    return Chart(name, _document(name, width, total, parts, font=font))


def _document(name: str, width: float, height: float, parts: list[str], *, font: float) -> str:
    """An <svg> element with its name as <title> and aria-label; shrinks with a narrow page (viewBox) but
    grows only until its ``font`` reads as 12 px, so text is one size across charts of any width."""
    label = html.escape(name, quote=True)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'style="max-width: {width * 12 / font:.0f}px" aria-label="{label}" font-family="DejaVu Sans, sans-serif">\n'
        f"<title>{label}</title>"
        f'<rect width="100%" height="100%" fill="#ffffff"/>{"".join(parts)}</svg>'
    )


def _legend(verdicts: Iterable[str]) -> list[tuple[str, str, str]]:
    present = set(verdicts)
    return [(MARKERS[v], COLOURS[v], v) for v in ("FAIL", "INCONCLUSIVE", "PASS") if v in present]


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
        shown, dots = set(), []
        for r in rows:
            key = (model, dataset, attribute, r["group"])
            numbers = (_number(r["estimate"]), _number(r["ci_low"]), _number(r["ci_high"]))
            if key in gaps:
                verdict = gaps[key]["verdict"]
                dots.append(
                    _Dot(f"{r['group']} vs {gaps[key]['reference']}", *numbers, COLOURS[verdict], MARKERS[verdict])
                )
                shown.add(verdict)
            elif key in references:
                dots.append(_Dot(f"{r['group']} (reference)", *numbers, REFERENCE["color"], REFERENCE["marker"]))
            else:
                verdict = r["verdict"]
                dots.append(_Dot(f"{r['group']} (floor)", *numbers, COLOURS[verdict], MARKERS[verdict]))
                shown.add(verdict)
        floor = min(max(_number(rows[0]["band_low"]), 0.0), 1.0)
        legend = _legend(shown)
        if any(d.marker == "s" for d in dots):
            legend.append(("s", "#000000", "reference group"))
        title = f"Accuracy by {attribute}: {model} on {dataset}"
        chart = _interval_chart(
            title,
            f"{model} | {dataset} | {attribute}",
            dots,
            position=lambda v: v,
            ticks=[(t / 5, f"{t / 5:.1f}") for t in range(6)],
            xlabel="accuracy (corrected interval); marker = verdict of the accuracy gap",
            shapes=[_vertical(floor, dash=True)],
            legend=[*legend, ("-", "grey", "floor")],
        )
        charts.append(chart)
    return charts


def _vertical(fraction: float, *, dash: bool = False, colour: str = "grey") -> str:
    """A vertical line at a fraction of the plot's width, as a format string for _interval_chart."""
    style = ' stroke-dasharray="4 3"' if dash else ""
    return f'<path d="M{{left}} {{top}}m{PLOT_WIDTH * fraction:.1f} 0v{{height}}" stroke="{colour}"{style}/>'


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


def _log_ticks(left: float, right: float) -> list[tuple[float, str]]:
    """Powers of ten inside [left, right], or its two ends when fewer than two fall inside."""
    low, high = math.ceil(math.log10(left)), math.floor(math.log10(right))
    step = max(1, math.ceil((high - low + 1) / 9))  # at most about nine labels, so none overlap
    ticks = [10.0**k for k in range(low, high + 1) if k % step == 0]
    if len(ticks) < 2:
        ticks = sorted({left, 1.0, right} if left < 1 < right else {left, right})
    return [(t, _decade(t)) for t in ticks]


def _decade(value: float) -> str:
    """0.01, 0.1, 1, 10, 100, 1000 as written; beyond that 1e-4, 1e5 (one style on both sides of 1)."""
    exponent = math.log10(value) if value > 0 else 0.0
    if exponent.is_integer() and abs(exponent) >= 4:
        return f"1e{int(exponent)}"
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


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
        span = math.log(right / left)

        def position(value: float, left: float = left, span: float = span) -> float:
            if value <= 0:
                return -1.0
            return 2.0 if math.isinf(value) else math.log(value / left) / span

        a, b = (min(max(position(edge), 0.0), 1.0) for edge in band)
        shade = f'<rect x="{{left}}" y="{{top}}" width="{PLOT_WIDTH * (b - a):.1f}" height="{{height}}" fill="{BAND}"'
        shade += f' transform="translate({PLOT_WIDTH * a:.1f} 0)"/>'
        dots = [
            _Dot(
                f"{r['attribute']}={r['group']}~{r['reference']} {r['detail']}",
                *(_number(r[k]) for k in ("estimate", "ci_low", "ci_high")),
                COLOURS[r["verdict"]],
                MARKERS[r["verdict"]],
            )
            for r in rows
        ]
        title = f"Confusion rate ratios: {model} on {dataset}"
        chart = _interval_chart(
            title,
            f"{model} | {dataset}: every FAIL and the ratios furthest from 1 ({len(rows)})",
            dots,
            position=position,
            ticks=_log_ticks(left, right),
            xlabel="rate ratio P(pred | true, group) / P(pred | true, reference), corrected interval",
            shapes=[shade, _vertical(min(max(position(1.0), 0.0), 1.0))],
            legend=[*_legend(r["verdict"] for r in rows), ("band", BAND, "tolerance band")],
            font=7,
        )
        charts.append(chart)
    return charts


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
        title = f"Non-answers by {table['attribute']}: {table['model']} on {table['dataset']}"
        charts.append(Chart(title, _bars(table, kinds, shares, title)))
    return charts


def _bars(table: dict[str, Any], kinds: list[str], shares: dict[str, Any], title: str) -> str:
    plt = _pyplot()
    with plt.rc_context(LITERAL_TEXT):  # every Text literal, tick labels drawn at savefig included
        figure, axes = plt.subplots(figsize=(6.5, 0.45 * len(table["groups"]) + 1.2))
        left = np.zeros(len(table["groups"]))
        for kind, colour in zip(kinds, ("#CC79A7", "#E69F00", "#56B4E9"), strict=False):
            axes.barh(table["groups"], shares[kind], left=left, color=colour, label=kind)
            left += shares[kind]
        axes.set_xlabel("share of images without a label")
        axes.set_title(f"{table['model']} | {table['dataset']} | {table['attribute']}", fontsize=10)
        axes.legend(fontsize=8)
        return _svg(figure, title)


CELL, GAP, FONT = 16, 28, 7  # cell side, space between panels, label size (px)
STEPS = 10  # colours in the bar, so each reads as a tenth


def _text_width(text: str, size: float) -> float:
    """A generous estimate of a label's width in DejaVu Sans, enough to leave it room."""
    return 0.62 * size * len(text)


# matplotlib's viridis in STEPS steps (perceptually uniform, colour-blind safe), written out so that a page
# without a non-answer chart never imports matplotlib; a test compares it with matplotlib's own.
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725")


def _svg_text(x: float, y: float, text: str, size: float, **attributes: str) -> str:
    extra = "".join(f' {key.replace("_", "-")}="{value}"' for key, value in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}"{extra}>{html.escape(text, quote=False)}</text>'


def _heatmap(table: dict[str, Any], steps: tuple[str, ...]) -> Chart:
    counts = np.asarray(table["counts"], dtype=float)
    groups, labels, outcomes = table["groups"], table["labels"], table["outcomes"]
    shown = [i for i, o in enumerate(outcomes) if o in labels or counts[:, :, i].any()]
    left = 14 + max((_text_width(label, FONT) for label in labels), default=0) + 4  # "true emotion", labels
    bottom = max((_text_width(outcomes[i], FONT) for i in shown), default=0) + 20  # rotated labels, "predicted"
    top, panel = 40, CELL * len(shown)
    height = CELL * len(labels)
    bar_x = left + len(groups) * (panel + GAP)
    width, total = bar_x + 90, top + height + bottom
    title = f"{table['model']} | {table['dataset']} | {table['attribute']}: P(predicted | true)"
    parts = [_svg_text(width / 2, 14, title, 10, text_anchor="middle")]
    parts.append(_svg_text(10, top + height / 2, "true emotion", 8, text_anchor="middle",
                           transform=f"rotate(-90 10 {top + height / 2:.1f})"))  # fmt: skip
    for t, label in enumerate(labels):
        parts.append(_svg_text(left - 3, top + CELL * t + CELL * 0.7, label, FONT, text_anchor="end"))
    for g, group in enumerate(groups):
        x0 = left + g * (panel + GAP)
        matrix = counts[g][:, shown]
        rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        parts.append(_svg_text(x0 + panel / 2, top - 6, f"{group} (n={int(matrix.sum())})", 9, text_anchor="middle"))
        for t in range(len(labels)):
            for c in range(len(shown)):
                colour = steps[min(int(rates[t, c] * STEPS), STEPS - 1)]
                parts.append(f'<rect x="{x0 + CELL * c}" y="{top + CELL * t}" width="{CELL}" height="{CELL}" '
                             f'fill="{colour}"><title>{rates[t, c]:.3f}</title></rect>')  # fmt: skip
        for c, i in enumerate(shown):
            x, y = x0 + CELL * c + CELL * 0.65, top + height + 4
            parts.append(
                _svg_text(x, y, outcomes[i], FONT, text_anchor="end", transform=f"rotate(-90 {x:.1f} {y:.1f})")
            )
        parts.append(_svg_text(x0 + panel / 2, total - 4, "predicted", 8, text_anchor="middle"))
    for k, colour in enumerate(steps):  # the colour bar, 0 at the bottom
        y = top + height - (k + 1) * height / STEPS
        parts.append(f'<rect x="{bar_x}" y="{y:.1f}" width="12" height="{height / STEPS:.2f}" fill="{colour}"/>')
    for tick in range(0, 11, 2):
        y = top + height - tick * height / 10
        parts.append(_svg_text(bar_x + 16, y + 3, f"{tick / 10:.1f}", FONT))
    label_y = top + height / 2
    parts.append(_svg_text(bar_x + 45, label_y, "P(predicted | true)", 8, text_anchor="middle",
                           transform=f"rotate(-90 {bar_x + 45} {label_y:.1f})"))  # fmt: skip
    name = f"Confusions by {table['attribute']}: {table['model']} on {table['dataset']}"
    return Chart(name, _document(name, width, total, parts, font=FONT))


def confusion_heatmaps(facts: dict[str, Any]) -> list[Chart]:
    """Per model x dataset x attribute: one row-normalised confusion matrix per group, side by side.

    Single attributes only: an intersection's cells would make a strip of a dozen unreadable
    panels, and its tensor stays in the JSON for anyone who wants it. Colours: viridis (perceptually
    uniform, colour-blind safe) in ten steps, with a colour bar; each cell's rate in its tooltip.
    """
    return [_heatmap(table, VIRIDIS) for table in facts.get("counts", []) if GROUP_JOIN not in table["attribute"]]


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
