"""The markdown table: each measured rate beside its promise, a 95% interval and a mark."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from statsmodels.stats.proportion import proportion_confint

from simulations.harness import Measured

RULE = (
    "A row meets its promise when the measured rate is within 2 standard errors of it: rate <= promise + 2 SE "
    "for an upper bound (rate >= promise - 2 SE for a lower bound), SE = sqrt(promise (1 - promise) / sims), "
    "the binomial error of a rate exactly at the promise. The interval is Wilson's 95% score interval."
)
COLUMNS = (
    "scenario",
    "mode",
    "n per group",
    "counted",
    "promise",
    "sims",
    "rate [95% CI]",
    "PASS / FAIL / INC of records (deciding rules)",
    "meets",
)


def meets(rate: float, promise: float | None, sims: int, *, at_most: bool) -> bool | None:
    """The row's mark (None when there is no promise or no simulation to judge)."""
    if promise is None or sims == 0:
        return None
    se = math.sqrt(promise * (1 - promise) / sims)
    return rate <= promise + 2 * se if at_most else rate >= promise - 2 * se


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def judged(m: Measured) -> bool | None:
    """Whether the row meets its promise (None: nothing promised or nothing run)."""
    check = m.scenario.checks[m.check_index]
    rate = m.events / m.sims if m.sims else math.nan
    return meets(rate, check.promise, m.sims, at_most=check.at_most)


def row(m: Measured) -> str:
    check = m.scenario.checks[m.check_index]
    if m.sims:
        low, high = proportion_confint(m.events, m.sims, alpha=0.05, method="wilson")
        measured = f"{_percent(m.events / m.sims)} [{_percent(low)}, {_percent(high)}]"
    else:
        measured = "no runs"
    total = sum(m.verdicts.values()) or 1
    mix = " / ".join(_percent(m.verdicts[v] / total) for v in ("PASS", "FAIL", "INCONCLUSIVE"))
    if m.rules:
        mix += " (" + ", ".join(f"{k} {v}" for k, v in sorted(m.rules.items())) + ")"
    if check.promise is None:
        promise, mark = "reported", "—"
    else:
        promise = ("<= " if check.at_most else ">= ") + _percent(check.promise)
        ok = judged(m)
        mark = "—" if ok is None else "yes" if ok else "**NO**"
    counted = check.label + (f" ({m.note})" if m.note else "")
    return (
        f"| {m.scenario.name} | {m.scenario.mode} | {m.size} | {counted} | {promise} | {m.sims} | {measured} "
        f"| {mix} | {mark} |"
    )


def render(measured: Iterable[Measured], *, command: str, seconds: float) -> str:
    """The whole page: what was run, the rule, the table, and what each scenario's world is."""
    measured = list(measured)
    lines = [
        "# Simulated verdict promises",
        "",
        f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min. {RULE}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *(row(m) for m in measured),
        "",
        "## Scenarios",
        "",
    ]
    seen = []
    for m in measured:
        if m.scenario.name not in seen:
            seen.append(m.scenario.name)
            lines.append(f"- **{m.scenario.name}** ({m.scenario.criterion or 'every criterion'}): {m.scenario.truth}")
    failed = sum(judged(m) is False for m in measured)
    lines += ["", f"{failed} of {len(measured)} rows miss their promise." if failed else "Every promise met."]
    return "\n".join(lines) + "\n"
