"""fairness.md: what a CI job summary shows, with names from the data escaped."""

from fer_fairness.report.markdown import escape, render_markdown, write_markdown


def record(verdict, *, group="Black", estimate=-0.2, ci=(-0.3, -0.1), model="m"):
    return {
        "verdict": verdict,
        "criterion": "accuracy_gap",
        "model": model,
        "dataset": "toy",
        "attribute": "race",
        "group": group,
        "reference": "White",
        "detail": None,
        "estimate": estimate,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "confidence": 0.99,
        "band_low": -0.05,
        "band_high": 0.05,
        "null": 0.0,
        "n": {group: 200, "White": 210},
    }


DECISION = {"line": "fer-fairness decision: GATE CLOSED: 2 FAIL"}


def test_counts_findings_and_fail_rows():
    records = [record("FAIL"), record("FAIL", group="Asian", ci=(-0.5, -0.2)), record("PASS"), record("INCONCLUSIVE")]
    text = render_markdown(records=records, decision=DECISION)
    lines = text.splitlines()
    assert "**fer-fairness decision: GATE CLOSED: 2 FAIL**" in lines
    assert "| FAIL | 2 |" in lines and "| PASS | 1 |" in lines and "| INCONCLUSIVE | 1 |" in lines
    # One finding for both FAILs; the worst is Asian, whose interval lies farther outside the band.
    assert [line for line in lines if line.startswith("- ")] == [
        "- 2 FAIL accuracy\\_gap, m on toy; worst race=Asian vs White: estimate -0.200, CI \\[-0.500, -0.200\\] "
        "outside band \\[-0.050, 0.050\\]"
    ]
    assert (
        "| accuracy\\_gap | m | toy | race=Black vs White | -0.200 | \\[-0.300, -0.100\\] (99%) "
        "| \\[-0.050, 0.050\\] | Black=200, White=210 |"
    ) in lines


def test_no_fail_no_tables():
    text = render_markdown(records=[record("PASS")], decision=DECISION)
    assert "| Criterion" not in text and "Findings" not in text


def test_names_cannot_format_the_page_or_add_columns():
    assert escape("<b>x|y\x01") == "\\<b\\>x\\|y#x01"
    text = render_markdown(records=[record("FAIL", model="<b>x|y")], decision=DECISION)
    row = next(line for line in text.splitlines() if line.startswith("| accuracy"))
    assert row.replace("\\|", "").count("|") == 9  # 8 columns, whatever the names hold


def test_written_beside_the_reports_and_appended_to_the_step_summary(tmp_path):
    summary = tmp_path / "step_summary.md"
    summary.write_text("an earlier step\n")
    written = write_markdown(tmp_path / "reports" / "fairness.md", "hello", step_summary=str(summary))
    assert (tmp_path / "reports" / "fairness.md").read_text() == "hello"
    assert summary.read_text() == "an earlier step\nhello\n"
    assert written == [tmp_path / "reports" / "fairness.md", summary]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["fairness.md"]  # no temporary left
