"""fairness.html and fairness.json: escaping, self-containment, the verdict matrix, strict JSON."""

import dataclasses
import json
import math
import random
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fer_fairness.criteria.records import Record
from fer_fairness.report.html import render_html, write_html
from fer_fairness.report.json_report import SCHEMA_VERSION, write_json

EVIL = "<script>alert(1)</script>"
AMP_MODEL = 'a&b"'
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")
WORST_FIRST = ("FAIL", "INCONCLUSIVE", "PASS")


def record(**overrides) -> dict:
    """A dict shaped like Record.to_dict(), plus the collector's nodeid and outcome."""
    base = {
        "test_id": "accuracy_gap[m|d|race=Black~White]",
        "criterion": "accuracy_gap",
        "model": "m",
        "dataset": "d",
        "attribute": "race",
        "group": "Black",
        "reference": "White",
        "detail": None,
        "metric": "accuracy difference",
        "verdict": "PASS",
        "rule": "inside",
        "mode": "harm",
        "inconclusive": "skip",
        "estimate": -0.012,
        "ci_low": -0.04,
        "ci_high": 0.016,
        "confidence": 0.99,
        "p_value": 0.41,
        "p_adjusted": 0.82,
        "test_method": "two-proportion z-test",
        "threshold": "|d| <= 0.05",
        "band_low": -0.05,
        "band_high": 0.05,
        "n": {"Black": 120, "White": 340},
        "null": 0.0,
        "confidence_nominal": 0.99,
        "inference": "independent images",
        "rates": {"Black": 0.71, "White": 0.722},
        "count_ratio": None,
        "power": 0.93,
        "required_n": None,
        "family": "accuracy_gap|m|d",
        "family_size": 3,
        "owner": "",
        "rationale": "",
        "note": "",
        "reason": "",
    }
    base.update(overrides)
    base.setdefault("nodeid", f"fairness_tests/test_accuracy.py::test_gap[{base['test_id']}]")
    base.setdefault("outcome", {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "skipped"}[base["verdict"]])
    return base


def facts(**overrides) -> dict:
    """Shaped like pipeline._facts."""
    base = {
        "fer_fairness_version": "0.1.0",
        "created": "2024-08-27T10:00:00+00:00",
        "seed": 1234,
        "thresholds": {"source": "thresholds.toml", "sha256": "e3b0c44298fc1c14"},
        "policy": {
            "mode": "harm",
            "alpha": 0.05,
            "correction": "holm",
            "family": "criterion",
            "power": 0.8,
            "min_group_size": 30,
            "inconclusive": "skip",
        },
        "datasets": {
            "d": {
                "spec": "manifest:faces.csv",
                "description": "manifest faces.csv",
                "images": 460,
                "fingerprint": "0123456789abcdef",
                "attributes": ["race"],
                "emotions": ["anger", "fear"],
                "composition": {"race": {"Black": {"anger": 60, "fear": 60}, "White": {"anger": 200, "fear": 140}}},
            }
        },
        "models": {"m": {"kind": "predictions", "path": "vendor.csv", "rows": "460"}},
        "python": "3.11.7",
        "platform": "linux",
        "versions": {"numpy": "2.0.0", "pandas": "3.0.0"},
    }
    base.update(overrides)
    return base


def mixed_records(seed: int = 7) -> list[dict]:
    """Many models x datasets x criteria with random verdicts, hostile names included."""
    rng = random.Random(seed)
    out = []
    for model in ("gpt-4o", AMP_MODEL, "clip"):
        for dataset in ("radiate", "cfd"):
            for criterion in ("accuracy_gap", "confusion_ratio", "non_answer_gap"):
                for k in range(rng.randint(0, 4)):
                    group = rng.choice(["Black", "White", EVIL])
                    verdict = rng.choice(VERDICTS)
                    test_id = f"{criterion}[{model}|{dataset}|race={group}~White#{k}]"
                    out.append(
                        record(
                            test_id=test_id,
                            criterion=criterion,
                            model=model,
                            dataset=dataset,
                            group=group,
                            verdict=verdict,
                            n={group: rng.randint(1, 200), "White": rng.randint(1, 200)},
                            rates={group: rng.random(), "White": rng.random()},
                            count_ratio=rng.random() * 3 if criterion == "confusion_ratio" else None,
                            reason=f"needs about {rng.randint(50, 900)} per group" if verdict == "INCONCLUSIVE" else "",
                        )
                    )
    return out


def assert_no_injected_markup(html: str) -> None:
    """The page's one script is its own inline one; no user string became a tag."""
    assert html.lower().count("<script") == 1
    assert re.search(r"<script>\n/\* Filters, search and sorting", html)
    assert EVIL not in html


class Page(HTMLParser):
    """Headings, tables (rows of (tag, attrs, text) cells) and every tag with its attributes."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.sections: list[tuple[str, list]] = []  # (h2 text, tables after it)
        self.spans: list[tuple[dict, str]] = []
        self._h2: list[str] | None = None
        self._table: list | None = None
        self._cell: list | None = None
        self._span: list | None = None
        self.sections.append(("", []))
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "h2":
            self._h2 = []
        elif tag == "table":
            self._table = []
            self.sections[-1][1].append(self._table)
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = [tag, attrs, []]
            self._table[-1].append(self._cell)
        elif tag == "br" and self._cell is not None:
            self._cell[2].append("\n")
        elif tag == "span":
            self._span = [attrs, []]

    def handle_endtag(self, tag):
        if tag == "h2" and self._h2 is not None:
            self.sections.append(("".join(self._h2).strip(), []))
            self._h2 = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self._cell[2] = "".join(self._cell[2]).strip()
            self._cell = None
        elif tag == "span" and self._span is not None:
            self.spans.append((self._span[0], "".join(self._span[1]).strip()))
            self._span = None

    def handle_data(self, data):
        for sink in (self._h2, self._cell[2] if self._cell else None, self._span[1] if self._span else None):
            if sink is not None:
                sink.append(data)

    def tables(self, heading: str) -> list[list[list]]:
        found = [tables for title, tables in self.sections if title == heading]
        assert len(found) == 1, f"expected one section {heading!r}, found {len(found)}"
        return found[0]


def test_record_fixture_has_exactly_the_fields_of_a_record():
    fields = {f.name for f in dataclasses.fields(Record)}
    shaped = record()
    assert set(shaped) == fields | {"nodeid", "outcome"}
    plain = {k: v for k, v in shaped.items() if k not in ("nodeid", "outcome")}
    assert Record.from_dict(plain).to_dict() == plain


# --- escaping -----------------------------------------------------------------------------------


def test_every_user_string_is_escaped():
    records = [
        record(
            test_id=f"accuracy_gap[{AMP_MODEL}|{EVIL}|race={EVIL}~White]",
            model=AMP_MODEL,
            dataset=EVIL,
            group=EVIL,
            metric=EVIL,
            threshold=EVIL,
            verdict="INCONCLUSIVE",
            reason=EVIL,
            n={EVIL: 3, "White": 5},
            rates={EVIL: 0.5, "White": 0.6},
        ),
        record(criterion=EVIL, model=AMP_MODEL, test_id=f"{EVIL}[x]"),
    ]
    page_facts = facts(
        fer_fairness_version=EVIL,
        created=EVIL,
        seed=EVIL,
        thresholds={"source": EVIL, "sha256": EVIL},
        policy={"mode": EVIL, "alpha": EVIL, "correction": EVIL, "family": EVIL},
        datasets={
            EVIL: {
                "description": EVIL,
                "images": EVIL,
                "fingerprint": EVIL,
                "attributes": [EVIL],
                "emotions": [EVIL],
                "composition": {EVIL: {EVIL: {EVIL: 4}}},
            }
        },
        models={AMP_MODEL: {EVIL: EVIL, "path": AMP_MODEL}},
        python=EVIL,
        versions={EVIL: EVIL},
    )
    html = render_html(records=records, facts=page_facts)
    assert_no_injected_markup(html)
    assert AMP_MODEL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r"a&amp;b(&#34;|&quot;|&#x22;)", html)
    # Escaped faithfully: a reader sees the names exactly as given.
    page = Page(html)
    texts = [cell[2] for _, tables in page.sections for table in tables for row in table for cell in row]
    assert AMP_MODEL in texts
    assert EVIL in texts
    assert f"{EVIL}: 3" in "\n".join(texts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(str.strip),
    group=st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(str.strip),
)
def test_any_name_reads_back_exactly(model, group):
    html = render_html(records=[record(model=model, group=group, n={group: 7, "White": 9})], facts={})
    assert html.lower().count("<script") == 1
    page = Page(html)
    matrix = page.tables("Verdict matrix")[0]
    assert matrix[1][0][2] == model.strip()
    accuracy = page.tables("accuracy_gap")[0]
    assert accuracy[1][8][2].split("\n")[0] == f"{group}: 7".strip()


# --- self-contained -------------------------------------------------------------------------------


def test_page_is_self_contained():
    records = [*mixed_records(), record(model="http://evil.example/x.js", reason="https://evil.example")]
    html = render_html(records=records, facts=facts())
    page = Page(html)
    for tag, attrs in page.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "base"), tag
        for name in ("src", "action", "srcset", "data"):
            assert name not in attrs, (tag, name)
        # Links stay inside the page: to a section, a test's row, an SVG marker.
        for name in ("href", "xlink:href"):
            assert attrs.get(name, "#").startswith("#"), (tag, attrs[name])
    assert [tag for tag, _ in page.tags].count("script") == 1  # the page's own, inline
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"@import|url\((?!#)", html, re.IGNORECASE)  # url(#id) is an SVG clip path
    assert not re.search(r"\bfetch\(|XMLHttpRequest|import\(", html)  # the script asks nothing of a network
    assert "<style>" in html  # the CSS is inline


# --- the verdict matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_verdict_matrix_counts(seed):
    records = mixed_records(seed)
    expected: dict[tuple[str, str], dict[str, Counter]] = {}
    for r in records:
        expected.setdefault((r["model"], r["dataset"]), {}).setdefault(r["criterion"], Counter())[r["verdict"]] += 1
    criteria_seen = []
    for r in records:
        if r["criterion"] not in criteria_seen:
            criteria_seen.append(r["criterion"])

    page = Page(render_html(records=records, facts=facts()))
    (matrix,) = page.tables("Verdict matrix")
    header = [cell[2] for cell in matrix[0]]
    assert header[:2] == ["model", "dataset"]
    assert sorted(header[2:]) == sorted(criteria_seen)
    assert len(matrix) - 1 == len(expected)
    shown: dict[tuple[str, str], dict[str, Counter]] = {}
    for row in matrix[1:]:
        model, dataset = row[0][2], row[1][2]
        assert (model, dataset) not in shown
        shown[(model, dataset)] = {}
        for criterion, cell in zip(header[2:], row[2:], strict=True):
            counts = Counter()
            for line in filter(None, cell[2].split("\n")):
                number, verdict = line.split()
                counts[verdict] = int(number)
            if counts:
                shown[(model, dataset)][criterion] = counts
            want = expected[(model, dataset)].get(criterion, Counter())
            worst = next((v for v in WORST_FIRST if want[v]), None)
            assert (cell[1].get("class") or None) == worst, (model, dataset, criterion)
    assert shown == expected
    # rows are in a stable order
    assert [(r[0][2], r[1][2]) for r in matrix[1:]] == sorted(expected)

    pills = {text.split()[1]: int(text.split()[0]) for attrs, text in page.spans if "pill" in attrs.get("class", "")}
    totals = Counter(r["verdict"] for r in records)
    assert pills == {v: totals[v] for v in VERDICTS}


def test_sections_list_every_record_worst_first():
    records = mixed_records(3)
    page = Page(render_html(records=records, facts=facts()))
    for criterion in {r["criterion"] for r in records}:
        (table,) = page.tables(criterion)
        shown = [(row[0][2], row[1][2]) for row in table[1:]]
        wanted = sorted(
            ((r["verdict"], r["test_id"]) for r in records if r["criterion"] == criterion),
            key=lambda vt: (WORST_FIRST.index(vt[0]), vt[1]),
        )
        assert shown == wanted


def test_each_failing_or_inconclusive_row_carries_its_own_reason():
    records = mixed_records(5)
    for i, r in enumerate(records):
        r["reason"] = f"reason {i} <{r['verdict']}>"
    assert {r["verdict"] for r in records} == set(VERDICTS), "the seed should produce every verdict"
    page = Page(render_html(records=records, facts=facts()))
    shown = {}
    for criterion in {r["criterion"] for r in records}:
        (table,) = page.tables(criterion)
        assert table[0][-1][2] == "reason"
        shown.update({row[1][2]: row[-1][2] for row in table[1:]})
    # A PASS has nothing to explain; the others say why on their own row, as the terminal does.
    assert shown == {r["test_id"]: "" if r["verdict"] == "PASS" else r["reason"] for r in records}
    assert "Inconclusive, and why" not in render_html(records=records, facts=facts())  # no collapsed list


def test_composition_table_shows_the_counts():
    page = Page(render_html(records=[record()], facts=facts()))
    (table,) = page.tables("Composition: d")
    assert [[c[2] for c in row] for row in table] == [
        ["race", "anger", "fear"],
        ["Black", "60", "60"],
        ["White", "200", "140"],
    ]


def test_run_facts_are_shown():
    page = Page(render_html(records=[record()], facts=facts()))
    (table,) = page.tables("Run facts")
    rows = {row[0][2]: row[1][2] for row in table}
    assert rows["seed"] == "1234"
    assert "thresholds.toml" in rows["thresholds"] and "e3b0c44298fc1c14" in rows["thresholds"]
    assert "0123456789abcdef" in rows["dataset d"]
    assert "path: vendor.csv" in rows["model m"]


# --- numbers that are not numbers ---------------------------------------------------------------------


def test_infinities_nan_and_none_render():
    odd = record(
        test_id="confusion_ratio[m|d|race=Black~White|anger->disgust]",
        criterion="confusion_ratio",
        verdict="INCONCLUSIVE",
        estimate=math.inf,
        ci_low=0.4,
        ci_high=math.inf,
        p_value=None,
        p_adjusted=math.nan,
        count_ratio=-math.inf,
        rates={"Black": math.inf, "White": None},
        confidence=None,
        band_low=None,
        band_high=None,
        power=None,
    )
    tiny = record(test_id="accuracy_gap[tiny]", p_value=1e-12, p_adjusted=3e-11, estimate=0.0001234)
    none = record(test_id="accuracy_gap[none]", estimate=None, ci_low=None, ci_high=None, p_value=None, p_adjusted=None)
    page = Page(render_html(records=[odd, tiny, none], facts=facts()))
    (ratio,) = page.tables("confusion_ratio")
    cells = [c[2] for c in ratio[1]]
    assert cells[3] == "∞"
    assert cells[4].startswith("[0.400, ∞]")
    assert cells[5] == "–" and cells[6] == "–"  # None and NaN p-values
    assert cells[9] == "Black: ∞\nWhite: –"
    assert cells[10] == "−∞"
    (gaps,) = page.tables("accuracy_gap")
    by_id = {row[1][2]: [c[2] for c in row] for row in gaps[1:]}
    # a tiny p-value must not read as zero
    assert by_id["accuracy_gap[tiny]"][5] == "1e-12"
    assert by_id["accuracy_gap[tiny]"][6] == "3e-11"
    assert by_id["accuracy_gap[tiny]"][3] == "0.000123"
    assert by_id["accuracy_gap[none]"][3] == "–" and by_id["accuracy_gap[none]"][4] == "–"


def test_no_records_and_no_facts_render():
    page = Page(render_html(records=[], facts={}))
    (matrix,) = page.tables("Verdict matrix")
    assert len(matrix) == 1
    pills = {text.split()[1]: int(text.split()[0]) for attrs, text in page.spans if "pill" in attrs.get("class", "")}
    assert pills == {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0}


def test_write_html_is_atomic_and_utf8(tmp_path):
    path = tmp_path / "fairness.html"
    path.write_text("old")
    returned = write_html(path, records=mixed_records(), facts=facts())
    assert returned == path
    text = path.read_bytes().decode("utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert text.rstrip().endswith("</html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fairness.html"]


# --- fairness.json --------------------------------------------------------------------------------------


def _reject_constant(name):
    raise AssertionError(f"non-standard JSON constant {name}")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)


def record_objects() -> list[Record]:
    shapes = mixed_records(11)
    objects = []
    for i, shape in enumerate(shapes):
        plain = {k: v for k, v in shape.items() if k not in ("nodeid", "outcome")}
        if i % 3 == 0:  # some with numbers JSON cannot hold
            plain.update(estimate=math.inf, ci_high=math.inf, band_low=-math.inf, count_ratio=math.nan)
            plain["rates"] = {k: math.inf for k in plain["rates"]}
        objects.append(Record.from_dict(plain))
    return objects


def test_json_is_strict_versioned_and_round_trips(tmp_path):
    objects = record_objects()
    records = [{**o.to_dict(), "nodeid": f"t.py::t[{i}]", "outcome": "passed"} for i, o in enumerate(objects)]
    path = write_json(tmp_path / "fairness.json", records=records, facts=facts())
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\b(NaN|-?Infinity)\b", text)
    document = read_json(path)
    assert document["schema_version"] == SCHEMA_VERSION
    assert isinstance(SCHEMA_VERSION, str) and re.fullmatch(r"\d+\.\d+", SCHEMA_VERSION)
    assert document["run"] == facts()
    assert document["tests"] == records
    for shape, obj in zip(document["tests"], objects, strict=True):
        plain = {k: v for k, v in shape.items() if k not in ("nodeid", "outcome")}
        assert Record.from_dict(plain).to_dict() == obj.to_dict()


def test_json_spells_nan_as_null_and_infinity_as_a_string(tmp_path):
    obj = Record.from_dict(
        {
            k: v
            for k, v in record(estimate=math.inf, ci_low=-math.inf, p_value=math.nan, rates={"Black": math.nan}).items()
            if k not in ("nodeid", "outcome")
        }
    )
    path = write_json(tmp_path / "fairness.json", records=[obj.to_dict()], facts={})
    (test,) = read_json(path)["tests"]
    assert test["estimate"] == "inf" and test["ci_low"] == "-inf" and test["p_value"] is None
    assert test["rates"] == {"Black": None}
    assert Record.from_dict(test).estimate == math.inf  # and back
    assert test["ci_high"] == 0.016  # finite numbers are kept as they are


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_refuses_non_finite_numbers_and_writes_nothing(tmp_path, bad):
    path = tmp_path / "fairness.json"
    with pytest.raises(ValueError):
        write_json(path, records=[record(estimate=bad)], facts=facts())
    assert list(tmp_path.iterdir()) == []


def test_json_replaces_an_old_report(tmp_path):
    path = tmp_path / "fairness.json"
    path.write_text("{ half a report")
    write_json(path, records=[record()], facts=facts())
    assert read_json(path)["tests"] == [record()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fairness.json"]


def test_exclusions_prompts_and_usage_are_shown_escaped():
    extra = facts()
    extra["datasets"]["d"]["exclusions"] = [{"reason": "unreadable <img>", "race": "Black", "count": 2}]
    extra["prompts"] = {"gpt": {"chat": "Pick one: <anger|disgust>"}}
    extra["usage"] = {"gpt": {"calls": 12, "cache_hits": 30}}
    page = render_html(records=[record()], facts=extra)
    assert "Exclusions: d" in page and "unreadable &lt;img&gt;" in page
    assert "Pick one: &lt;anger|disgust&gt;" in page
    assert "Model calls: gpt" in page and ">cache_hits<" in page and ">30<" in page
    assert "<img>" not in page


# --- what the run decided, and what it could not evaluate -------------------------------------------


def test_the_decision_line_comes_first_and_escaped():
    from fer_fairness.report.decision import decide_run

    records = mixed_records(3)
    decision = decide_run(records, mode="equivalence", inconclusive="skip", planned=len(records) + 5).to_dict()
    html = render_html(records=records, facts=facts(), decision=decision)
    page = Page(html)
    first = [i for i, (tag, attrs) in enumerate(page.tags) if attrs.get("id") == "decision"]
    matrix = [i for i, (tag, attrs) in enumerate(page.tags) if tag == "table"][0]
    assert len(first) == 1 and first[0] < matrix  # above the verdict matrix
    assert f"partial run: {len(records)} of {len(records) + 5} fairness tests ran" in html
    evil = render_html(records=[record()], facts={}, decision={**decision, "line": EVIL})
    assert_no_injected_markup(evil)
    assert "&lt;script&gt;" in evil
    assert 'id="decision"' not in render_html(records=[record()], facts={})  # older callers: no line, no box


def test_not_evaluated_samples_are_listed_per_group_only_when_there_are_any():
    counted = facts(not_evaluated={"m": {"d": {"race": {"Black": 4, EVIL: 0}}}, "clip": {"d": {"race": {"Black": 0}}}})
    page = Page(render_html(records=[record()], facts=counted))
    (table,) = page.tables("Not evaluated")
    assert [[cell[2] for cell in row] for row in table] == [
        ["model", "dataset", "attribute", "not evaluated per group"],
        ["m", "d", "race", f"Black: 4\n{EVIL}: 0"],
    ]
    none = facts(not_evaluated={"m": {"d": {"race": {"Black": 0, "White": 0}}}})
    assert "Not evaluated" not in render_html(records=[record()], facts=none)


def test_json_carries_the_decision_first(tmp_path):
    from fer_fairness.report.decision import decide_run

    decision = decide_run([record(verdict="FAIL")], mode="harm", inconclusive="skip", planned=1).to_dict()
    path = write_json(tmp_path / "fairness.json", records=[record(verdict="FAIL")], facts=facts(), decision=decision)
    document = read_json(path)
    assert list(document)[:2] == ["schema_version", "decision"]
    assert document["decision"] == decision and document["decision"]["status"] == "GATE CLOSED"


def test_page_says_how_a_verdict_is_read_and_which_rule_decided():
    clustered = record(
        verdict="FAIL", rule="outside", inference="clustered by subject (design effect 2.10, 1.30; Rao-Scott)"
    )
    html = render_html(records=[clustered, record()], facts=facts())
    assert 'id="how-to-read"' in html
    for rule in ("outside", "inside", "powered", "overlap", "undefined"):
        assert f"<td>{rule}</td>" in html
    assert "clustered by subject (design effect 2.10, 1.30; Rao-Scott)" in html
    assert "like with like" in html and "never scored" in html


# --- findings, anchors, navigation ---------------------------------------------------------------------


def confusion(group="dark", reference="light", attribute="skin_tone", **overrides) -> dict:
    """A failing confusion ratio: fear read as anger 29.2 times as often for the group."""
    fields = {
        "test_id": f"m|d|{attribute}={group}~{reference}|fear->anger",
        "criterion": "confusion_ratio",
        "attribute": attribute,
        "group": group,
        "reference": reference,
        "detail": "fear->anger",
        "metric": "confusion rate ratio",
        "verdict": "FAIL",
        "estimate": 29.2,
        "ci_low": 1.7,
        "ci_high": 509.4,
        "n": {group: 84, reference: 408},
        "rates": {group: 0.146, reference: 0.005},
    }
    return record(**{**fields, **overrides})


def test_a_finding_reads_the_numbers_in_plain_words():
    from fer_fairness.report.html import findings

    (finding,) = findings([confusion(), record()])  # the PASS is no finding
    assert finding["sentence"] == (
        "Fear is read as Anger 29.2x as often for dark as for light (skin_tone; corrected CI 1.7-509, 84 vs 408 faces)."
    )
    gap = record(verdict="FAIL", estimate=-0.227, ci_low=-0.303, ci_high=-0.15, rates={"Black": 0.502, "White": 0.729})
    (finding,) = findings([gap])
    assert finding["sentence"] == (
        "Accuracy is 22.7 points lower for Black than for White (race): 0.502 vs 0.729 "
        "(corrected CI −30.3 to −15 points, 120 vs 340 faces)."
    )


def test_an_intersection_repeating_a_gap_is_one_finding_and_a_new_contrast_another():
    from fer_fairness.report.html import findings

    single = confusion()
    cells = [
        confusion("dark+female", "light+female", "skin_tone+gender"),
        confusion("dark+male", "light+male", "skin_tone+gender"),
    ]
    other_gender = confusion("female+dark", "male+dark", "gender+skin_tone")  # gender differs: a new contrast
    other_pair = confusion(detail="fear->disgust", test_id="m|d|skin_tone=dark~light|fear->disgust")
    other_model = confusion(model="m2", test_id="m2|d|skin_tone=dark~light|fear->anger")
    found = findings([*cells, single, other_gender, other_pair, other_model])
    by_record = {f["record"]["test_id"]: sorted(r["test_id"] for r in f["also"]) for f in found}
    assert by_record == {
        single["test_id"]: sorted(r["test_id"] for r in cells),  # the plain attribute speaks for its cells
        other_gender["test_id"]: [],
        other_pair["test_id"]: [],
        other_model["test_id"]: [],
    }
    # Without the single attribute's FAIL, the cells still make one finding, not two.
    assert len(findings(cells)) == 1
    page = render_html(records=[*cells, single], facts=facts())
    assert page.count("Fear is read as Anger") == 1


def test_a_criterion_without_a_phrase_still_gets_a_sentence():
    from fer_fairness.report.html import PHRASES, findings

    mine = record(criterion="my_metric", metric="my gap", threshold="|d| <= 0.01", verdict="FAIL", estimate=0.25)
    assert "my_metric" not in PHRASES
    (finding,) = findings([mine])
    assert (
        finding["sentence"]
        == "my gap for race=Black vs White: 0.25 (corrected CI -0.04 to 0.016), outside |d| <= 0.01."
    )


def test_every_row_has_a_stable_anchor_a_ci_script_can_compute():
    import hashlib

    hostile = [record(test_id=t) for t in ("a b", 'q"<x>&', "é|~=→", "a b ")]
    records = [*mixed_records(2), *hostile]
    page = Page(render_html(records=records, facts=facts()))
    rows = {attrs["data-test"]: attrs["id"] for tag, attrs in page.tags if tag == "tr" and "data-test" in attrs}
    # The documented recipe, computed here independently of the code under test.
    assert rows == {r["test_id"]: "t-" + hashlib.sha256(r["test_id"].encode()).hexdigest()[:12] for r in records}
    ids = [attrs["id"] for _, attrs in page.tags if "id" in attrs]
    assert len(ids) == len(set(ids))  # charts and rows never share an id
    links = {attrs["href"] for tag, attrs in page.tags if tag == "a"}
    assert {f"#{anchor}" for anchor in rows.values()} <= links


def test_rows_carry_what_the_filters_match_and_nothing_is_hidden_without_script():
    records = mixed_records(4)
    page = Page(render_html(records=records, facts=facts()))
    rows = [attrs for tag, attrs in page.tags if tag == "tr" and "data-test" in attrs]
    by_id = {r["test_id"]: r for r in records}
    for attrs in rows:
        r = by_id[attrs["data-test"]]
        for key in ("verdict", "criterion", "model", "dataset", "attribute"):
            assert attrs[f"data-{key}"] == r[key]
        assert "hidden" not in attrs
    assert len(rows) == len(records)
    (form,) = [attrs for tag, attrs in page.tags if attrs.get("id") == "filters"]
    assert "hidden" in form  # the script shows the filters; without it they would do nothing
    selects = {attrs["data-filter"] for tag, attrs in page.tags if tag == "select"}
    assert selects == {"verdict", "criterion", "model", "dataset", "attribute"}


def test_first_screen_has_decision_findings_matrix_then_contents():
    from fer_fairness.report.decision import decide_run

    records = [confusion(), *mixed_records(3)]
    decision = decide_run(records, mode="harm", inconclusive="skip", planned=len(records)).to_dict()
    page = Page(render_html(records=records, facts=facts(), decision=decision))
    order = [attrs.get("id") for _, attrs in page.tags if attrs.get("id") in ("decision", "findings", "matrix", "toc")]
    assert order == ["decision", "findings", "matrix", "toc"]


def test_owner_and_rationale_of_each_criterion_are_shown():
    records = [
        record(owner="fairness team <ft@x>", rationale="EU AI Act art. 10"),
        record(criterion="confusion_ratio", test_id="c[1]"),
    ]
    html = render_html(records=records, facts=facts())
    assert "owner: fairness team &lt;ft@x&gt; · rationale: EU AI Act art. 10" in html
    assert "owner: not set · rationale: not set" in html


def test_local_paths_show_as_file_names_beside_the_fingerprint():
    local = facts()
    local["datasets"]["d"]["spec"] = "manifest:/home/alice/secret project/faces.csv"
    local["models"]["m"]["path"] = "/home/alice/secret project/vendor.csv"
    local["thresholds"]["source"] = "C:\\Users\\alice\\thresholds.toml"
    html = render_html(records=[record()], facts=local)
    assert "alice" not in html and "secret project" not in html
    page = Page(html)
    (table,) = page.tables("Run facts")
    rows = {row[0][2]: row[1][2] for row in table}
    assert rows["dataset d"].startswith("manifest:faces.csv · ") and "fingerprint 0123456789abcdef" in rows["dataset d"]
    assert "path: vendor.csv" in rows["model m"]
    assert rows["thresholds"].startswith("thresholds.toml (sha256")


def test_print_narrow_and_dark_styles_exist():
    html = render_html(records=[record()], facts=facts())
    style = html[html.index("<style>") : html.index("</style>")]
    assert "@media print" in style and ".filters" in style.split("@media print")[1].split("}")[0]
    assert "@media (max-width: 600px)" in style
    assert "@media (prefers-color-scheme: dark)" in style


def test_dataset_bias_and_covariates_are_shown_per_group():
    run = facts()
    name = next(iter(run["datasets"]))
    run["datasets"][name]["dataset_bias"] = {
        "race": {
            "shares": {"Black": 0.25, "White": 0.75},
            "smallest": {"group": "Black", "share": 0.25, "low": 0.2, "high": 0.31},
            "association": {"cramers_v": 0.42, "low": 0.3, "high": 0.5, "nmi": 0.07},
            "strong": True,
        }
    }
    run["covariates"] = {
        name: {"race": {"Black": {"luminance": {"n": 4, "mean": 0.4, "q1": 0.31, "median": 0.42, "q3": 0.5}}}}
    }
    page = render_html(records=[record()], facts=run)
    bias = page.split('id="dataset-bias"', 1)[1].split("</table>", 1)[0]
    assert "Black: 25%" in bias and "0.420 [0.300, 0.500]" in bias and "strong: read the stratified criteria" in bias
    covariates = page.split('id="covariates"', 1)[1].split("</table>", 1)[0]
    assert "<th>luminance</th>" in covariates and "0.420 (0.310–0.500)" in covariates


# --- a big run ----------------------------------------------------------------------------------------


def test_a_10k_test_report_keeps_every_fail_anchor_and_reason():
    import hashlib

    rng = random.Random(11)
    records = []
    for i in range(10_000):
        verdict = "FAIL" if i % 97 == 0 else rng.choice(("INCONCLUSIVE", "INCONCLUSIVE", "PASS"))
        why = f"the corrected interval reaches across an edge of the band; about {i} images per group would settle it"
        reason = {
            "FAIL": f"gap for race=g{i} vs White: FAIL, outside the band & <beyond>. estimate 0.{i}; n g{i}=3",
            "INCONCLUSIVE": f"gap for race=g{i} vs White: INCONCLUSIVE, {why}. estimate 0.{i}; rates g{i}=0.5",
            "PASS": "",
        }[verdict]
        criterion = ("accuracy_gap", "confusion_ratio", "non_answer_gap")[i % 3]
        records.append(
            record(test_id=f"m{i % 3}|d|race=g{i}~White", criterion=criterion, group=f"g{i}", verdict=verdict,
                   reason=reason, n={f"g{i}": 3, "White": 9}, rates={f"g{i}": 0.5, "White": 0.7})
        )  # fmt: skip
    page = Page(render_html(records=records, facts=facts()))
    shown = {}
    for criterion in ("accuracy_gap", "confusion_ratio", "non_answer_gap"):
        (table,) = page.tables(criterion)
        shown.update({row[1][2]: row[-1][2] for row in table[1:]})
    anchors = {attrs["data-test"]: attrs["id"] for tag, attrs in page.tags if tag == "tr" and "data-test" in attrs}
    fails = [r for r in records if r["verdict"] == "FAIL"]
    assert len(shown) == len(anchors) == len(records) and len(fails) == 104
    for r in fails:  # the whole message, as the terminal prints it, under the documented anchor
        assert anchors[r["test_id"]] == "t-" + hashlib.sha256(r["test_id"].encode()).hexdigest()[:12]
        assert shown[r["test_id"]] == r["reason"]
    for r in records:
        if r["verdict"] == "INCONCLUSIVE":  # why, and what would settle it; the numbers are the row's cells
            i = r["group"][1:]
            assert shown[r["test_id"]] == f"the corrected interval reaches across an edge of the band; about {i} " \
                "images per group would settle it."  # fmt: skip
    links = {attrs["href"] for tag, attrs in page.tags if tag == "a"}
    assert {f"#{anchors[r['test_id']]}" for r in fails} <= links  # each FAIL's finding links to its row


def test_an_inconclusive_row_keeps_the_why_and_the_note_of_the_real_message():
    from fer_fairness.config import parse_thresholds
    from fer_fairness.criteria.messages import explain
    from fer_fairness.report.html import row_reason

    thresholds = parse_thresholds({}, source="thresholds.toml")
    shaped = record(verdict="INCONCLUSIVE", rule="overlap", required_n=642.0)
    plain = {k: v for k, v in shaped.items() if k not in ("nodeid", "outcome")}
    for note in ("", "the reference group is small"):
        message = explain(Record.from_dict({**plain, "note": note}), thresholds)
        shown = row_reason({**plain, "reason": message})
        assert shown.startswith("the corrected interval reaches across an edge of the band [-0.050, 0.050]")
        assert "about 642 images per group would settle it (have Black=120, White=340)." in shown
        assert "estimate" not in shown and "accuracy difference for" not in shown  # both stand in the row's cells
        assert shown.endswith(f" Note: {note}.") if note else shown.endswith("White=340).")
    failing = explain(Record.from_dict({**plain, "verdict": "FAIL", "rule": "outside"}), thresholds)
    assert row_reason({**plain, "verdict": "FAIL", "reason": failing}) == failing  # a FAIL keeps every word
