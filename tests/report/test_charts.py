"""The report's charts: drawn from the records and facts alone, inline SVG with text as text, names escaped."""

import xml.etree.ElementTree as ET

import pytest

from fer_fairness.report.charts import COLOURS, FOREST_ROWS, all_charts
from fer_fairness.report.html import render_html
from tests.report.test_html import facts, record

SVG = "{http://www.w3.org/2000/svg}"


def floor(group, estimate, verdict="PASS", model="m<b>", dataset="d", attribute="race"):
    return {
        "criterion": "accuracy_floor", "model": model, "dataset": dataset, "attribute": attribute,
        "group": group, "reference": None, "detail": None, "verdict": verdict, "test_id": f"{model}|{dataset}|{group}",
        "estimate": estimate, "ci_low": None if estimate is None else estimate - 0.05,
        "ci_high": None if estimate is None else estimate + 0.05, "band_low": 0.5, "band_high": 1.0,
    }  # fmt: skip


def ratio(i, estimate, low, high, verdict="INCONCLUSIVE"):
    return {
        "criterion": "confusion_ratio", "model": "m<b>", "dataset": "d", "attribute": "race", "group": "Black",
        "reference": "White", "detail": f"pair{i}", "verdict": verdict, "test_id": f"r{i}",
        "estimate": estimate, "ci_low": low, "ci_high": high, "band_low": 1 / 1.5, "band_high": 1.5,
    }  # fmt: skip


def counts(refused_black: int):
    # groups Black, White; labels anger, fear; outcomes anger, fear, refused, unparseable, error
    return {
        "model": "m<b>", "dataset": "d", "attribute": "race", "groups": ["<script>x</script>", "White"],
        "labels": ["anger", "fear"], "outcomes": ["anger", "fear", "refused", "unparseable", "error"],
        "counts": [[[30, 5, refused_black, 0, 0], [4, 30, 0, 0, 0]], [[33, 5, 0, 0, 0], [3, 35, 0, 0, 0]]],
    }  # fmt: skip


def parsed(chart) -> ET.Element:
    """The chart as XML: well-formed, an <svg> with its title first, no bitmap inside."""
    root = ET.fromstring(chart.svg)
    assert root.tag == f"{SVG}svg"
    assert root[0].tag == f"{SVG}title" and root[0].text == chart.title
    assert root.get("aria-label") == chart.title
    assert not list(root.iter(f"{SVG}image"))  # vector only
    return root


def svg_texts(chart) -> list[str]:
    """Every text the chart draws, as the browser finds it (svg.fonttype none: text, not glyph paths)."""
    return ["".join(t.itertext()) for t in parsed(chart).iter(f"{SVG}text")]


def test_one_chart_per_grouping_and_each_an_svg():
    records = [floor("Black", 0.6), floor("White", 0.8), floor("female", 0.7, attribute="gender")]
    records += [floor("male", None, attribute="gender"), floor("x", None, attribute="skin")]  # untested
    records += [ratio(0, 2.0, 1.1, 3.6), ratio(1, "inf", 1.0, "inf"), ratio(2, 0.5, 0.2, 1.1)]
    charts = all_charts(records=records, facts={"counts": [counts(refused_black=4)]})
    assert [c.title for c in charts["accuracy"]] == [
        "Accuracy by gender: m<b> on d",
        "Accuracy by race: m<b> on d",
    ]  # nothing to draw for a grouping whose every group went untested
    assert [c.title for c in charts["forest"]] == ["Confusion rate ratios: m<b> on d"]
    assert [c.title for c in charts["non_answers"]] == ["Non-answers by race: m<b> on d"]
    assert [c.title for c in charts["heatmaps"]] == ["Confusions by race: m<b> on d"]
    for section in charts.values():
        for chart in section:
            parsed(chart)
    assert "anger" in svg_texts(charts["heatmaps"][0]) and "unparseable" not in svg_texts(charts["heatmaps"][0])


def test_no_non_answer_chart_for_a_model_that_always_answered():
    assert all_charts(records=[], facts={"counts": [counts(refused_black=0)]})["non_answers"] == []


def forest_labels(chart) -> list[str]:
    """The forest's row labels from the bottom row to the top one, read from the SVG's text positions."""
    rows = [t for t in parsed(chart).iter(f"{SVG}text") if "".join(t.itertext()).startswith("race=")]
    return ["".join(t.itertext()) for t in sorted(rows, key=lambda t: -float(t.get("y")))]


def test_the_forest_keeps_the_ratios_furthest_from_one():
    rows = [ratio(i, 1.0 + i / 100, 0.9, 3.0) for i in range(FOREST_ROWS + 10)]
    (chart,) = all_charts(records=rows, facts={})["forest"]
    labels = forest_labels(chart)
    assert len(labels) == FOREST_ROWS
    assert labels[-1].endswith(f"pair{FOREST_ROWS + 9}")  # the largest ratio sits at the top
    assert not any(label.endswith(" pair0") for label in labels)  # the smallest are left out


@pytest.mark.parametrize("name", ["<script>x</script>"])
def test_the_page_embeds_charts_and_escapes_their_titles(name):
    full = {**record(), **floor(name, 0.7)}  # every field a record has, as the template reads them
    page = render_html(records=[full], facts={**facts(), "counts": [counts(refused_black=2)]})
    assert page.count("<svg ") == 3  # accuracy, non-answers, heatmap
    assert 'aria-label="Accuracy by race: m&lt;b&gt; on d"' in page
    assert "<title>Accuracy by race: m&lt;b&gt; on d</title>" in page
    assert "<b>" not in page and name not in page


# '$\frac{$' is mathtext that does not parse (it crashed the writer); 'US$ 5 and $3' a pair of single signs
# that mathtext would swallow; '\$' is what mathtext would turn into a bare '$'.
DOLLAR_NAMES = ["$\\frac{$", "US$ 5 and $3", "a\\$b"]


@pytest.mark.parametrize("name", DOLLAR_NAMES)
@pytest.mark.parametrize("usetex", [False, True])  # a user's matplotlibrc asking for TeX changes nothing
def test_every_name_on_a_chart_is_literal_text(monkeypatch, name, usetex):
    import matplotlib
    from matplotlib.text import Text

    from fer_fairness.report import charts as module

    drawn, svg = [], module._svg
    monkeypatch.setattr(module, "_svg", lambda figure, title: drawn.append(figure) or svg(figure, title))
    records = [floor(name, 0.6, model=name, dataset=name), floor("White", 0.8, model=name, dataset=name)]
    records += [{**ratio(0, 2.0, 1.1, 3.6), "model": name, "group": name}]
    table = {**counts(refused_black=4), "model": name, "groups": [name, "White"]}
    with matplotlib.rc_context({"text.usetex": usetex}):
        charts = all_charts(records=records, facts={"counts": [table]})
    assert sum(len(section) for section in charts.values()) == 4
    assert len(drawn) == 1  # only the non-answer bars use matplotlib; every chart's names are checked below
    for figure in drawn:
        texts = [t for t in figure.findobj(Text) if name in t.get_text()]
        assert texts  # the name is on every chart
        for text in texts:
            # What matplotlib will draw for this text: the string unchanged, not parsed as math.
            assert text._preprocess_math(text.get_text()) == (text.get_text(), False)
            assert not text.get_usetex()
    for section in charts.values():
        for chart in section:
            assert any(name in text for text in svg_texts(chart))  # and reaches the SVG as literal text


# --- charts a reader can trust --------------------------------------------------------------------------


def test_every_fail_is_in_the_forest_even_beyond_the_cut_and_with_infinite_bounds():
    rows = [ratio(i, 1.0 + i / 10, 0.9, 5.0) for i in range(FOREST_ROWS + 10)]  # large, far from 1
    fails = [
        ratio(100, 1.6, 1.55, 1.7, "FAIL"),
        ratio(101, "inf", 3.0, "inf", "FAIL"),
        ratio(102, 0.0, 0.0, 0.5, "FAIL"),
    ]
    (chart,) = all_charts(records=rows + fails, facts={})["forest"]
    labels = forest_labels(chart)
    assert len(labels) == FOREST_ROWS
    for r in fails:
        assert sum(label.endswith(f" {r['detail']}") for label in labels) == 1


def test_verdicts_have_a_shape_and_a_colour_and_a_legend():
    assert len(set(COLOURS.values())) == len(set(module_markers().values())) == 3
    (chart,) = all_charts(records=[ratio(0, 2.0, 1.6, 2.4, "FAIL"), ratio(1, 1.0, 0.9, 1.1, "PASS")], facts={})[
        "forest"
    ]
    words = svg_texts(chart)
    assert "FAIL" in words and "PASS" in words and "INCONCLUSIVE" not in words  # the legend names what is drawn
    assert COLOURS["FAIL"].lower() in chart.svg.lower() and COLOURS["PASS"].lower() in chart.svg.lower()


def module_markers():
    from fer_fairness.report.charts import MARKERS

    return MARKERS


def test_the_accuracy_chart_shows_the_gap_verdict_of_each_group():
    floors = [floor("Black", 0.6), floor("White", 0.8)]  # both floors PASS
    gap = {**floors[0], "criterion": "accuracy_gap", "reference": "White", "verdict": "FAIL", "test_id": "g"}
    (with_gap,) = all_charts(records=[*floors, gap], facts={})["accuracy"]
    (without,) = all_charts(records=floors, facts={})["accuracy"]
    assert COLOURS["FAIL"].lower() in with_gap.svg.lower() and COLOURS["FAIL"].lower() not in without.svg.lower()
    assert "Black vs White" in svg_texts(with_gap) and "White (reference)" in svg_texts(with_gap)


def test_heatmaps_have_a_colour_bar_and_full_labels():
    long = {**counts(refused_black=4), "labels": ["happiness", "surprise"], "outcomes": ["happiness", "surprise",
            "refused", "unparseable", "error"]}  # fmt: skip
    (chart,) = all_charts(records=[], facts={"counts": [long]})["heatmaps"]
    words = svg_texts(chart)
    assert "happiness" in words and "surprise" in words and "refused" in words  # not cut to "happi"
    assert "P(predicted | true)" in words  # the colour bar's label
    assert "1.0" in words and "0.0" in words  # its scale


def test_the_written_out_viridis_is_matplotlibs_in_ten_steps():
    from matplotlib import colormaps, colors

    from fer_fairness.report.charts import VIRIDIS

    steps = colormaps["viridis"].resampled(10)
    assert VIRIDIS == tuple(colors.to_hex(steps(i)) for i in range(10))


def test_a_page_without_non_answers_never_imports_matplotlib():
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from fer_fairness.report.html import render_html\n"
        "from tests.report.test_charts import counts, floor, ratio\n"
        "page = render_html(records=[floor('a', 0.6), floor('b', 0.8), ratio(0, 2.0, 1.6, 2.4, 'FAIL')],\n"
        "                   facts={'counts': [counts(refused_black=0)]})\n"
        "assert page.count('<svg ') == 3, page.count('<svg ')\n"
        "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
