"""The report's charts: drawn from the records and facts alone, embedded as PNGs, names escaped."""

import base64

import pytest

from fer_fairness.report.charts import FOREST_ROWS, all_charts
from fer_fairness.report.html import render_html
from tests.report.test_html import facts, record

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def decoded(chart) -> bytes:
    prefix = "data:image/png;base64,"
    assert chart.uri.startswith(prefix)
    return base64.b64decode(chart.uri[len(prefix) :])


def test_one_chart_per_grouping_and_each_a_png():
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
            assert decoded(chart).startswith(PNG_SIGNATURE)


def test_no_non_answer_chart_for_a_model_that_always_answered():
    assert all_charts(records=[], facts={"counts": [counts(refused_black=0)]})["non_answers"] == []


def test_the_forest_keeps_the_ratios_furthest_from_one(monkeypatch):
    from fer_fairness.report import charts as module

    drawn = []
    monkeypatch.setattr(module, "_png", lambda figure: drawn.append(figure.axes[0].get_yticklabels()) or "data:,")
    rows = [ratio(i, 1.0 + i / 100, 0.9, 3.0) for i in range(FOREST_ROWS + 10)]
    module.confusion_forest(rows)
    labels = [label.get_text() for label in drawn[0]]
    assert len(labels) == FOREST_ROWS
    assert labels[-1].endswith(f"pair{FOREST_ROWS + 9}")  # the largest ratio sits at the top
    assert not any(label.endswith(" pair0") for label in labels)  # the smallest are left out


@pytest.mark.parametrize("name", ["<script>x</script>"])
def test_the_page_embeds_charts_and_escapes_their_titles(name):
    full = {**record(), **floor(name, 0.7)}  # every field a record has, as the template reads them
    page = render_html(records=[full], facts={**facts(), "counts": [counts(refused_black=2)]})
    assert page.count('<img src="data:image/png;base64,') == 3  # accuracy, non-answers, heatmap
    assert 'alt="Accuracy by race: m&lt;b&gt; on d"' in page
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

    drawn, png = [], module._png
    monkeypatch.setattr(module, "_png", lambda figure: drawn.append(figure) or png(figure))
    records = [floor(name, 0.6, model=name, dataset=name), floor("White", 0.8, model=name, dataset=name)]
    records += [{**ratio(0, 2.0, 1.1, 3.6), "model": name, "group": name}]
    table = {**counts(refused_black=4), "model": name, "groups": [name, "White"]}
    with matplotlib.rc_context({"text.usetex": usetex}):
        charts = all_charts(records=records, facts={"counts": [table]})
    assert sum(len(section) for section in charts.values()) == len(drawn) == 4
    for figure in drawn:
        texts = [t for t in figure.findobj(Text) if name in t.get_text()]
        assert texts  # the name is on every chart
        for text in texts:
            # What matplotlib will draw for this text: the string unchanged, not parsed as math.
            assert text._preprocess_math(text.get_text()) == (text.get_text(), False)
            assert not text.get_usetex()
