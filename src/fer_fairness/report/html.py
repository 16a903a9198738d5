"""fairness.html: one self-contained page (inline CSS and script, no network), every string escaped by Jinja2."""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from fer_fairness._cache import atomic_path
from fer_fairness.config import CRITERIA
from fer_fairness.counts import GROUP_JOIN
from fer_fairness.criteria.regression import NEW_GROUP

VERDICTS = ("FAIL", "INCONCLUSIVE", "PASS")

# One sentence per FAIL finding, by criterion. Fields: see _finding_fields. A criterion missing here (a user's
# own) gets GENERIC_PHRASE, so a new criterion never costs a finding its sentence.
PHRASES = {
    "confusion_ratio": "{true} is read as {predicted} {ratio}x as often for {group} as for {reference} "
    "({attribute}; corrected CI {low}-{high}, {n_group} vs {n_reference} faces)",
    "accuracy_gap": "Accuracy is {points} points {lower} for {group} than for {reference} ({attribute}): "
    "{rate_group} vs {rate_reference} (corrected CI {low_points} to {high_points} points, "
    "{n_group} vs {n_reference} faces)",
    "accuracy_gap_stratified": "Within each true emotion, accuracy is {points} points {lower} for {group} than for "
    "{reference} ({attribute}; corrected CI {low_points} to {high_points} points, {n_group} vs {n_reference} faces)",
    "recall_gap": "{true} is recognised {points} points {less} often for {group} than for {reference} "
    "({attribute}): {rate_group} vs {rate_reference} (corrected CI {low_points} to {high_points} points, "
    "{n_group} vs {n_reference} faces)",
    "non_answer_gap": "The model gives no label {points} points {more} often for {group} than for {reference} "
    "({attribute}; corrected CI {low_points} to {high_points} points, {n_group} vs {n_reference} faces)",
    "accuracy_floor": "Accuracy for {group} ({attribute}) is {estimate}, below the floor of {band_low} "
    "(corrected CI {low} to {high}, {n_group} faces)",
    "association": "Accuracy differs by up to {points} points across {attribute} groups, from {lowest} "
    "to {highest} (corrected CI {low_points} to {high_points} points)",
    "association_stratified": "Within each true emotion, accuracy differs by up to {points} points across "
    "{attribute} groups, from {lowest} to {highest} (corrected CI {low_points} to {high_points} points)",
}
GENERIC_PHRASE = "{metric} for {subject}: {estimate} (corrected CI {low} to {high}), outside {threshold}"


def anchor(test_id: str) -> str:
    """The id of a test's row: "t-" + the first 12 hex digits of sha256(test id as UTF-8).

    Safe for any character in a test id; a CI script links to fairness.html#t-<those digits>.
    """
    return "t-" + hashlib.sha256(test_id.encode("utf-8")).hexdigest()[:12]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("fer_fairness", "report/templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["bound"] = _bound
    env.filters["percent"] = _percent
    env.filters["anchor"] = anchor
    env.filters["filename"] = _file_name
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


def _file_name(value: Any) -> Any:
    """A local path reduced to its file name ("manifest:/home/me/faces.csv" -> "manifest:faces.csv").

    The page travels (CI artifacts, e-mail): a home directory is nobody's business, and the fingerprints beside
    it identify the inputs. Anything that does not look like a local path (a URL, a number) is left alone.
    """
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"([A-Za-z][\w-]*:)?((?:/(?!/)|~|[A-Za-z]:[\\/]|\.{1,2}[\\/]).*)", value)
    if not match:
        return value
    return (match.group(1) or "") + re.split(r"[\\/]", match.group(2))[-1]


def _matrix(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdict counts per (model, dataset) x criterion."""
    cells: dict[tuple[str, str], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for r in records:
        cells[(r["model"], r["dataset"])][r["criterion"]][r["verdict"]] += 1
    return {"criteria": _criteria(records), "rows": [(m, d, cells[(m, d)]) for (m, d) in sorted(cells)]}


def _criteria(records: list[dict[str, Any]]) -> list[str]:
    present = {r["criterion"] for r in records}
    return [c for c in CRITERIA if c in present] + sorted(present - set(CRITERIA))


def _not_evaluated(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (model, dataset, attribute, groups) where some sample's answer never arrived; [] when all did."""
    rows = []
    for model, datasets in facts.get("not_evaluated", {}).items():
        for dataset, attributes in datasets.items():
            for attribute, groups in attributes.items():
                if any(groups.values()):
                    rows.append({"model": model, "dataset": dataset, "attribute": attribute, "groups": groups})
    return rows


# --- findings -----------------------------------------------------------------------------------------


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _short(value: Any) -> str:
    """A number for a sentence: three significant digits, no exponent for large ratios."""
    v = _float(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _points(value: Any) -> str:
    """A difference of proportions in percentage points."""
    v = _float(value)
    return "–" if math.isnan(v) else _short(abs(v) * 100)


def _signed_points(value: Any) -> str:
    v = _float(value)
    return _short(v * 100).replace("-", "−") if not math.isnan(v) else "–"


def _disparity_key(r: dict[str, Any]) -> tuple:
    """What makes two FAIL records one finding.

    Same model, dataset, criterion and detail, and the same contrast: the attribute that differs between group
    and reference, and its two values. An intersection compares cells that differ in one attribute only, so
    "skin_tone+gender=dark+female~light+female" is the contrast skin_tone dark vs light, the same as
    "skin_tone=dark~light": one finding, with the intersections listed under it. Records without a reference
    (a floor, an association) are their own contrast.
    """
    attribute, group, reference = r["attribute"], r["group"], r["reference"]
    if reference is not None:
        names, values, others = attribute.split(GROUP_JOIN), group.split(GROUP_JOIN), reference.split(GROUP_JOIN)
        if len(names) == len(values) == len(others) > 1:
            differing = [i for i in range(len(names)) if values[i] != others[i]]
            if len(differing) == 1:
                i = differing[0]
                attribute, group, reference = names[i], values[i], others[i]
    return (r["model"], r["dataset"], r["criterion"], r["detail"], attribute, group, reference)


def _finding_fields(r: dict[str, Any]) -> dict[str, str]:
    """The numbers of a record as the words PHRASES are filled with."""
    n, rates = r.get("n") or {}, r.get("rates") or {}
    group, reference = r["group"], r["reference"]
    detail = r.get("detail") or ""
    true, _, predicted = detail.partition("->")
    estimate = _float(r.get("estimate"))
    finite_rates = {g: v for g, v in rates.items() if v is not None and not math.isnan(_float(v))}
    lowest = min(finite_rates, key=lambda g: _float(finite_rates[g]), default=None)
    highest = max(finite_rates, key=lambda g: _float(finite_rates[g]), default=None)
    subject = f"{r['attribute']}={group}" + (f" vs {reference}" if reference is not None else "")
    return {
        "group": group,
        "reference": "" if reference is None else reference,
        "attribute": r["attribute"],
        "detail": detail,
        "true": true.capitalize(),
        "predicted": predicted.capitalize(),
        "subject": subject + (f" ({detail})" if detail else ""),
        "metric": r.get("metric") or r["criterion"],
        "threshold": r.get("threshold") or "the band",
        "estimate": _short(estimate),
        "ratio": _short(estimate),
        "points": _points(estimate),
        "lower": "lower" if estimate < 0 else "higher",
        "less": "less" if estimate < 0 else "more",
        "more": "more" if estimate > 0 else "less",
        "low": _short(r.get("ci_low")),
        "low_points": _signed_points(r.get("ci_low")),
        "high_points": _signed_points(r.get("ci_high")),
        "high": _short(r.get("ci_high")),
        "band_low": _short(r.get("band_low")),
        "n_group": str(n.get(group, "–")),
        "n_reference": str(n.get(reference, "–")) if reference is not None else "–",
        "rate_group": _short(rates.get(group)),
        "rate_reference": _short(rates.get(reference)) if reference is not None else "–",
        "lowest": "–" if lowest is None else f"{lowest} ({_short(rates[lowest])})",
        "highest": "–" if highest is None else f"{highest} ({_short(rates[highest])})",
    }


def finding_sentence(record: dict[str, Any]) -> str:
    """One plain-words sentence for a FAIL record, from PHRASES (GENERIC_PHRASE for an unknown criterion)."""
    fields = _finding_fields(record)
    template = PHRASES.get(record["criterion"], GENERIC_PHRASE)
    try:
        return template.format(**fields) + "."
    except (KeyError, IndexError):  # a template naming a field that does not exist: still say something
        return GENERIC_PHRASE.format(**fields) + "."


def findings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One finding per distinct disparity among the FAILs (see _disparity_key), in the policy's criterion order.

    The sentence is drawn from the plainest record of the group: the single attribute when it failed too,
    else the fewest-attribute intersection; the other records are listed as "also seen in".
    """
    grouped: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["verdict"] == "FAIL":
            grouped[_disparity_key(r)].append(r)
    order = {c: i for i, c in enumerate(_criteria(records))}
    out = []
    for key, rows in grouped.items():
        rows = sorted(rows, key=lambda r: (r["attribute"].count(GROUP_JOIN), r["test_id"]))
        out.append({"sentence": finding_sentence(rows[0]), "record": rows[0], "also": rows[1:], "key": key})
    return sorted(out, key=lambda f: (order[f["record"]["criterion"]], f["key"][:2], f["record"]["test_id"]))


def _owners(records: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each criterion's owner and rationale (configured once per criterion, carried by every record)."""
    out: dict[str, dict[str, str]] = {}
    for r in records:
        entry = out.setdefault(r["criterion"], {"owner": "", "rationale": ""})
        for key in ("owner", "rationale"):
            entry[key] = entry[key] or r.get(key) or ""
    return out


def since_baseline(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The no_regression tests sorted for a release manager: what regressed, improved, is new, held.

    Regressed: the test FAILs (the gap grew beyond the tolerance, read from its interval). Improved:
    the change's whole interval lies on the side that closes the baseline's gap; that side is the
    band's open end, which exists only where the baseline showed a direction (a two-sided band names
    no side to improve towards). New: a group the baseline had no faces of. Held: everything else.
    """
    out: dict[str, list[dict[str, Any]]] = {"regressed": [], "improved": [], "new": [], "held": []}
    for r in records:
        if r["criterion"] != "no_regression":
            continue
        low, high = _float(r.get("ci_low")), _float(r.get("ci_high"))
        band_low, band_high = _float(r.get("band_low")), _float(r.get("band_high"))
        if r["verdict"] == "FAIL":
            out["regressed"].append(r)
        elif NEW_GROUP in (r.get("reason") or ""):
            out["new"].append(r)
        elif band_high == float("inf") and low > 0 or band_low == float("-inf") and high < 0:
            out["improved"].append(r)  # the change lies wholly on the side that closes the baseline's gap
        else:
            out["held"].append(r)
    return out if any(out.values()) else {}


def _percent(value: Any) -> str:
    return "" if value is None else f"{value * 100:.4g}%"


def _bound(value: Any) -> str:
    """An interval bound: floating-point dust around an exact 0 (a bootstrap bound) reads as 0.

    Not for p-values, where 1e-26 is information.
    """
    return _num(0.0 if isinstance(value, float) and abs(value) < 1e-12 else value)


def row_reason(r: dict[str, Any]) -> str:
    """The reason a row shows: a FAIL's whole message (as the terminal prints it), an INCONCLUSIVE's why.

    An INCONCLUSIVE message repeats its subject and verdict, then its numbers ("estimate ...; CI ...; n ...;
    rates ..."), all of which stand in the row's own cells; at 16,000 rows those repeats were two thirds of
    the page. The why, what would settle it and any note are kept word for word. A PASS has nothing to explain.
    """
    reason, verdict = r.get("reason") or "", r.get("verdict")
    if verdict == "PASS":
        return ""
    if verdict != "INCONCLUSIVE":
        return reason
    facts = reason.find(". estimate ")
    if facts < 0:
        return reason
    note = reason.find(" Note: ", facts)
    head = reason.find(": INCONCLUSIVE, ", 0, facts)
    start = head + len(": INCONCLUSIVE, ") if head >= 0 else 0
    return reason[start : facts + 1] + (reason[note:] if note >= 0 else "")


class _Escaper(dict):
    """html.escape of a value's text, remembered: a big run repeats the same names and numbers thousands of times."""

    def __missing__(self, text: str) -> str:
        self[text] = escaped = html.escape(text)
        return escaped

    def __call__(self, value: Any) -> str:
        return self[value if isinstance(value, str) else str(value)]


def _row(r: dict[str, Any], ratio_column: bool, e: _Escaper) -> str:
    """One test's row of the "All tests" tables, every value escaped.

    Built here rather than in the template: a 16,000-test run spent most of its page in Jinja's per-cell
    filter calls. A field a record lacks prints empty, as the template printed it.
    """
    get = r.get
    verdict, test_id, link = e(get("verdict", "")), e(r["test_id"]), anchor(r["test_id"])
    low = get("ci_low")
    interval = "–"
    if low is not None:
        bounds = e(f"[{_bound(low)}, {_bound(get('ci_high', ''))}]")
        interval = f'{bounds} <span class="muted">{e(_percent(get("confidence")))}</span>'
    n = "".join(f"{e(g)}: {e(k)}<br>" for g, k in (get("n") or {}).items())
    inference = get("inference")
    if inference and inference != "independent images":
        n += f'<span class="muted">{e(inference)}</span>'
    rates = "".join(f"{e(g)}: {e(_num(v))}<br>" for g, v in (get("rates") or {}).items())
    ratio = f'<td class="num">{e(_num(get("count_ratio", "")))}</td>' if ratio_column else ""
    method = get("test_method")
    # The test behind the p-value: an inconclusive row's reason no longer names it (see row_reason).
    method = f'<br><span class="muted">{e(method)}</span>' if method and get("p_value") is not None else ""
    return (
        f'<tr class="{verdict}" id="{link}" data-test="{test_id}" data-verdict="{verdict}" '
        f'data-criterion="{e(get("criterion", ""))}" data-model="{e(get("model", ""))}" '
        f'data-dataset="{e(get("dataset", ""))}" data-attribute="{e(get("attribute", ""))}">'
        f'<td class="v-{verdict}">{verdict}</td><td class="id"><a href="#{link}">'
        f'{test_id}</a></td><td>{e(get("metric", ""))}{method}</td><td class="num">{e(_num(get("estimate", "")))}</td>'
        f'<td class="num">{interval}</td><td class="num">{e(_num(get("p_value", ""), 2))}</td>'
        f'<td class="num">{e(_num(get("p_adjusted", ""), 2))}</td><td>{e(get("threshold", ""))}</td>'
        f"<td>{n}</td><td>{rates}</td>{ratio}<td>{e(get('rule', ''))}</td>"
        f'<td class="reason">{e(row_reason(r))}</td></tr>\n'
    )


def render_html(*, records: list[dict[str, Any]], facts: dict[str, Any], decision: dict[str, Any] | None = None) -> str:
    by_criterion: dict[str, list[dict[str, Any]]] = {name: [] for name in CRITERIA}  # the policy's order
    for r in sorted(records, key=lambda r: (VERDICTS.index(r["verdict"]), r["test_id"])):
        by_criterion.setdefault(r["criterion"], []).append(r)
    by_criterion = {name: rows for name, rows in by_criterion.items() if rows}
    escape = _Escaper()
    tables = {
        name: Markup("".join(_row(r, name == "confusion_ratio", escape) for r in rows))
        for name, rows in by_criterion.items()
    }
    tallies = {name: Counter(r["verdict"] for r in rows) for name, rows in by_criterion.items()}
    from fer_fairness.report.charts import all_charts  # numpy (and matplotlib, for non-answers) only for a page

    template = _environment().get_template("report.html.j2")
    return template.render(
        charts=all_charts(records=records, facts=facts),
        facts=facts,
        totals=Counter(r["verdict"] for r in records),
        decision=decision,
        not_evaluated=_not_evaluated(facts),
        matrix=_matrix(records),
        findings=findings(records),
        baseline=since_baseline(records),
        owners=_owners(records),
        by_criterion=dict(by_criterion),
        tables=tables,
        tallies=tallies,
        verdicts=VERDICTS,
    )


def write_html(
    path: Path, *, records: list[dict[str, Any]], facts: dict[str, Any], decision: dict[str, Any] | None = None
) -> Path:
    page = render_html(records=records, facts=facts, decision=decision)
    with atomic_path(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return path
