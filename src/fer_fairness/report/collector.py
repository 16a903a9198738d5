"""Gathers every fairness test's record on the controller and writes the reports once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from fer_fairness.report.decision import Decision, decide_run
from fer_fairness.report.json_report import write_json
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
        if not self.records:  # nothing ran (say -x stopped early): the terminal says so, the reports stay
            return
        facts = self.state.facts or self.worker_facts
        _junit_run_facts(self.config, facts, self.decision)
        records = [
            {**record, "nodeid": nodeid, "outcome": self.outcomes[nodeid]} for nodeid, record in self.records.items()
        ]
        records.sort(key=lambda r: r["nodeid"])
        report_dir = self.state.report_dir
        report_dir.mkdir(parents=True, exist_ok=True)
        decision = self.decision.to_dict()
        path = write_json(report_dir / "fairness.json", records=records, facts=facts, decision=decision)
        self.written.append(str(path))
        from fer_fairness.report.html import write_html  # Jinja2 is loaded only when a report is due

        path = write_html(report_dir / "fairness.html", records=records, facts=facts, decision=decision)
        self.written.append(str(path))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.decision is None:
            return
        verdicts = Counter(r["verdict"] for r in self.records.values())
        terminalreporter.section("fer-fairness")
        terminalreporter.write_line(
            f"{len(self.records)} fairness tests: "
            + ", ".join(f"{verdicts.get(v, 0)} {v}" for v in ("PASS", "FAIL", "INCONCLUSIVE"))
        )
        facts = self.state.facts or self.worker_facts
        for model, usage in facts.get("usage", {}).items():
            counts = ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in usage.items())
            terminalreporter.write_line(f"{model}: {counts}")
        for line in not_evaluated_lines(facts):
            terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"report: {path}")
        terminalreporter.write_line(self.decision.line, bold=True)


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
        xml.add_global_property(f"dataset[{name}].fingerprint", dataset.get("fingerprint", ""))
    for name, model in facts.get("models", {}).items():
        xml.add_global_property(f"model[{name}]", ", ".join(f"{k}={v}" for k, v in model.items()))
    for package, version in facts.get("versions", {}).items():
        xml.add_global_property(f"version[{package}]", version)
