"""Gathers every fairness test's record on the controller and writes the reports once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from fer_fairness.report.json_report import write_json
from fer_fairness.session import RunState


class ReportCollector:
    """Registered once per run (never on an xdist worker); its hooks see every test's report."""

    def __init__(self, config: pytest.Config, *, state: RunState, facts_key: str):
        self.config = config
        self.state = state
        self.facts_key = facts_key
        self.records: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, str] = {}
        self.worker_facts: dict[str, Any] = {}
        self.written: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "fairness_record", None)
        if record is not None:
            self.records[report.nodeid] = record
            self.outcomes[report.nodeid] = report.outcome

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        facts = getattr(node, "workeroutput", {}).get(self.facts_key)
        if facts and not self.worker_facts:
            self.worker_facts = facts

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file, so the run facts are in it
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.records:
            return
        facts = self.state.facts or self.worker_facts
        _junit_run_facts(self.config, facts)
        records = [
            {**record, "nodeid": nodeid, "outcome": self.outcomes[nodeid]} for nodeid, record in self.records.items()
        ]
        records.sort(key=lambda r: r["nodeid"])
        report_dir = self.state.report_dir
        report_dir.mkdir(parents=True, exist_ok=True)
        self.written.append(str(write_json(report_dir / "fairness.json", records=records, facts=facts)))
        from fer_fairness.report.html import write_html  # Jinja2 is loaded only when a report is due

        self.written.append(str(write_html(report_dir / "fairness.html", records=records, facts=facts)))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.records:
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
        for path in self.written:
            terminalreporter.write_line(f"report: {path}")


def _junit_run_facts(config: pytest.Config, facts: dict[str, Any]) -> None:
    # pytest offers no public hook for suite-level properties outside a test (record_testsuite_property
    # is a fixture, and a no-op on xdist workers); the LogXML object is reached through its stash key.
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - a future pytest without it simply loses the suite properties
        return
    xml = config.stash.get(xml_key, None)
    if xml is None or not facts:
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
