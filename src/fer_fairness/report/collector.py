"""Gathers every fairness test's record on the controller and writes the reports once."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from fer_fairness._cache import atomic_path
from fer_fairness.report.decision import Decision, decide_run, group_failures
from fer_fairness.report.json_report import render_json
from fer_fairness.report.markdown import render_markdown, write_markdown
from fer_fairness.session import RunState


class ReportCollector:
    """Registered once per run (never on an xdist worker); its hooks see every test's report."""

    def __init__(
        self,
        config: pytest.Config,
        *,
        state: RunState,
        facts_key: str,
        planned_key: str,
        planned: pytest.StashKey[int],
    ):
        self.config = config
        self.state = state
        self.facts_key = facts_key
        self.planned_key = planned_key  # xdist workeroutput key: fairness tests a worker collected
        self.planned = planned  # stash key: fairness tests collected here (before -k / --lf deselection)
        self.records: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, str] = {}
        self.worker_facts: dict[str, Any] = {}
        self.worker_planned: int | None = None
        self.written: list[str] = []
        self.render_failure: str | None = None
        self.decision: Decision | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "fairness_record", None)
        if record is not None:
            self.records[report.nodeid] = record
            self.outcomes[report.nodeid] = report.outcome

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {})
        facts = output.get(self.facts_key)
        if facts and not self.worker_facts:
            self.worker_facts = facts
        if output.get(self.planned_key) is not None:  # every worker collects the whole suite
            self.worker_planned = output[self.planned_key]

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file, so the run facts are in it
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        planned = self.config.stash.get(self.planned, None)
        if planned is None:
            planned = self.worker_planned
        if (not self.records and not planned) or self.config.option.collectonly:
            return
        t = self.state.thresholds
        self.decision = decide_run(
            self.records.values(),
            mode=t.mode,
            inconclusive=t.inconclusive,
            planned=planned,
            partial_note=_files_skipped_by_lf(self.config),
        )
        if not self.records:  # nothing ran (-x stopped early, Ctrl-C while models were asked): reports stay
            self._keep_junit()
            return
        facts = self.state.facts or self.worker_facts
        _junit_run_facts(self.config, facts, self.decision)
        records = [
            {**record, "nodeid": nodeid, "outcome": self.outcomes[nodeid]} for nodeid, record in self.records.items()
        ]
        records.sort(key=lambda r: r["nodeid"])
        try:
            paths = write_reports(
                self.state.report_dir,
                records=records,
                facts=facts,
                decision=self.decision.to_dict(),
                outcomes=self.state.outcomes,
            )
        except ReportRenderError as error:  # a drawing bug is reported in one line, not a traceback
            self.render_failure = str(error)
        else:
            self.written.extend(str(path) for path in paths)
            self._write_markdown(records)

    def _write_markdown(self, records: list[dict[str, Any]]) -> None:
        """fairness.md beside the pair, and the job summary on GitHub Actions (where it is set)."""
        text = render_markdown(records=records, decision=self.decision.to_dict())
        try:
            paths = write_markdown(
                self.state.report_dir / "fairness.md", text, step_summary=os.environ.get("GITHUB_STEP_SUMMARY")
            )
        except OSError as error:  # the verdicts stand; a summary that cannot be written is said in one line
            self.render_failure = f"fer-fairness: the Markdown summary could not be written: {error}"
        else:
            self.written.extend(str(path) for path in paths)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.decision is None:
            return
        verdicts = Counter(r["verdict"] for r in self.records.values())
        terminalreporter.section("fer-fairness")
        terminalreporter.write_line(
            f"{len(self.records)} fairness tests: "
            + ", ".join(f"{verdicts.get(v, 0)} {v}" for v in ("PASS", "FAIL", "INCONCLUSIVE"))
        )
        for finding in group_failures(self.records.values()):
            terminalreporter.write_line(finding.line(), red=True)
        if self.state.evaluation_s is not None:  # pytest's own "in N s" below counts the whole session
            terminalreporter.write_line(f"evaluation (load, predict, evaluate) took {self.state.evaluation_s:.1f} s")
        facts = self.state.facts or self.worker_facts
        for model, usage in facts.get("usage", {}).items():
            counts = ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in usage.items())
            terminalreporter.write_line(f"{model}: {counts}")
        for line in not_evaluated_lines(facts):
            terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"report: {path}")
        if self.render_failure:
            terminalreporter.write_line(self.render_failure, red=True, bold=True)
        terminalreporter.write_line(self.decision.line, bold=True)

    def _keep_junit(self) -> None:
        """pytest writes junit.xml after this hook; where it is ours (the default path), the last complete
        one is put back afterwards (pytest_unconfigure) rather than replaced by a run that tested nothing."""
        path = self.state.report_dir / "junit.xml"
        if self.config.option.xmlpath and Path(self.config.option.xmlpath).resolve() == path.resolve():
            self.junit_kept = (path, path.read_bytes() if path.is_file() else None)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        kept = getattr(self, "junit_kept", None)
        if kept is None:
            return
        path, previous = kept
        if previous is None:
            path.unlink(missing_ok=True)
            return
        with atomic_path(path) as temporary:
            temporary.write_bytes(previous)


class ReportRenderError(Exception):
    """The HTML page could not be drawn, so neither report was written (the previous pair stays)."""

    def __init__(self, report_dir: Path, error: BaseException):
        super().__init__(
            f"fer-fairness: the HTML report could not be drawn ({type(error).__name__}: {error}); fairness.json "
            f"was not written either (the two are written as a pair), so {report_dir} keeps the previous run's "
            "reports; this run's verdicts are in the summary above"
        )


def write_reports(
    report_dir: Path,
    *,
    records: list[dict[str, Any]],
    facts: dict[str, Any],
    decision: dict[str, Any],
    outcomes: Any = None,
) -> list[Path]:
    """Write fairness.json and fairness.html as one pair: the folder holds both from one run or the old pair.

    Both are rendered in memory and written to temporary names beside their targets first; only when
    both are complete are they renamed into place, so a failure while writing (or a kill before the
    renames) leaves the previous run's complete pair untouched. If the page cannot be drawn (a chart or
    template bug), nothing is written and ``ReportRenderError`` says so in one line.

    ``outcomes`` (every sample's outcome and image digest) joins the set as fairness-outcomes.csv.gz,
    its SHA-256 recorded in the JSON (``run.outcomes``), so a later run can use this one as a paired
    baseline and tell a stale file from the right one.
    """
    from fer_fairness.baseline import OUTCOMES_NAME
    from fer_fairness.report.html import render_html  # Jinja2 and matplotlib load only when a report is due

    json_path, html_path = report_dir / "fairness.json", report_dir / "fairness.html"
    files: dict[Path, bytes] = {}
    if outcomes is not None:
        data = _compressed_csv(outcomes)
        files[report_dir / OUTCOMES_NAME] = data
        kept = {"file": OUTCOMES_NAME, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(outcomes)}
        facts = {**facts, "outcomes": kept}
    json_text = render_json(records=records, facts=facts, decision=decision)
    try:
        html_text = render_html(records=records, facts=facts, decision=decision)
    except Exception as error:  # any bug in drawing: the new JSON beside the old page would mix two runs
        raise ReportRenderError(report_dir, error) from None
    files.update({json_path: json_text.encode("utf-8"), html_path: html_text.encode("utf-8")})
    with ExitStack() as renames:  # on leaving, each temporary replaces its target; on error all are removed
        for path, data in files.items():
            renames.enter_context(atomic_path(path)).write_bytes(data)
    return [json_path, html_path, *(p for p in files if p not in (json_path, html_path))]


def _compressed_csv(table: Any) -> bytes:
    """The outcomes as gzip'd CSV bytes; gzip's timestamp fixed, so the same outcomes hash the same."""
    buffer = io.BytesIO()
    table.to_csv(buffer, index=False, compression={"method": "gzip", "mtime": 0})
    return buffer.getvalue()


def not_evaluated_lines(facts: dict[str, Any]) -> list[str]:
    """One line per model x dataset x attribute with samples whose answer never arrived (none when all did)."""
    lines = []
    for model, datasets in facts.get("not_evaluated", {}).items():
        for dataset, attributes in datasets.items():
            for attribute, groups in attributes.items():
                shown = {g: n for g, n in groups.items() if n}
                if shown:
                    lines.append(
                        f"{model} on {dataset}: {sum(shown.values())} samples not evaluated (no answer arrived; "
                        f"never scored), by {attribute}: " + ", ".join(f"{g} {n}" for g, n in shown.items())
                    )
    return lines


def _files_skipped_by_lf(config: pytest.Config) -> str:
    # --lf leaves whole files uncollected, so their tests are not even counted as planned. pytest
    # keeps that count on its lfplugin only (a private attribute; a pytest without it loses the note).
    skipped = getattr(config.pluginmanager.get_plugin("lfplugin"), "_skipped_files", 0)
    return f"--lf skipped {skipped} test file(s)" if isinstance(skipped, int) and skipped > 0 else ""


# What XML 1.0 cannot hold (and DEL), as pytest's own escaping of property values defines it.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\x7e\x80-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_name(name: str) -> str:
    """A JUnit property name with what XML cannot hold written as #xNN, the way pytest writes values.

    pytest escapes property values but not names, and a control character in a group or model name
    would make junit.xml ill-formed; fairness.json keeps the exact name.
    """
    return _XML_ILLEGAL.sub(lambda match: f"#x{ord(match.group()):02X}", name)


def _junit_run_facts(config: pytest.Config, facts: dict[str, Any], decision: Decision) -> None:
    # pytest offers no public hook for suite-level properties outside a test (record_testsuite_property
    # is a fixture, and a no-op on xdist workers); the LogXML object is reached through its stash key.
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - a future pytest without it simply loses the suite properties
        return
    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    xml.add_global_property("decision", decision.line)
    xml.add_global_property("partial", str(decision.partial).lower())
    if not facts:
        return
    xml.add_global_property("fer_fairness_version", facts.get("fer_fairness_version", ""))
    xml.add_global_property("seed", str(facts.get("seed", "")))
    xml.add_global_property("thresholds_sha256", facts.get("thresholds", {}).get("sha256", ""))
    for name, dataset in facts.get("datasets", {}).items():
        xml.add_global_property(xml_name(f"dataset[{name}].fingerprint"), dataset.get("fingerprint", ""))
    for name, model in facts.get("models", {}).items():
        xml.add_global_property(xml_name(f"model[{name}]"), ", ".join(f"{k}={v}" for k, v in model.items()))
    for package, version in facts.get("versions", {}).items():
        xml.add_global_property(xml_name(f"version[{package}]"), version)
