"""Runs scenarios through the real product: a manifest with image files, a predictions file per
simulation, a thresholds.toml, and ``RunState.prepare`` exactly as the pytest plugin calls it.

A simulation is reproducible from (scenario name, size, index): its seed is derived from them and
given both to the simulated model and to the run (the bootstrap's seed).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_fairness.config import CRITERIA
from simulations.population import Answerer, Faces, lay_out
from simulations.scenarios import Scenario

FOLLOW_UP_CAP = 50_000  # a follow-up above this n per group is not run (and is counted as not settled)
# The smallest valid PNG (1x1, grey): every image file of a world is a hard link to a copy of it,
# one copy per 30,000 links (file systems cap the links to one inode; ext4 at 65,000).
_LINKS_PER_FILE = 30_000
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"
    "0000000a4944415478da6368000000820081da45083b0000000049454e44ae426082"
)


@dataclass(frozen=True)
class Outcome:
    """What one record of one simulation said (all a table row needs)."""

    criterion: str
    group: str
    detail: str | None
    verdict: str
    rule: str | None
    required_n: float | None


@dataclass(frozen=True)
class Simulation:
    scenario: Scenario
    size: int
    index: int
    follow_up: bool = False  # this is the re-run of an INCONCLUSIVE record at its required_n


def seed_of(*parts: Any) -> int:
    """A 32-bit seed from any printable parts (stable across processes and Python versions)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "big")


def policy_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario's thresholds.toml: its own keys, and every other criterion switched off."""
    document = {section: dict(table) for section, table in scenario.policy.items()}
    if scenario.criterion is not None:
        criteria = {name: dict(keys) for name, keys in document.get("criteria", {}).items()}
        for name in CRITERIA:
            criteria.setdefault(name, {})["enabled"] = name == scenario.criterion
        document["criteria"] = criteria
    return document


def to_toml(document: Mapping[str, Any]) -> str:
    """A TOML text for a two-level document of scalars, strings and lists (all a policy needs)."""
    lines = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def table(prefix: str, body: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, Mapping)}
        if scalars or not body:
            lines.append(f"[{prefix}]")
            lines.extend(f'"{k}" = {value(v)}' for k, v in scalars.items())
        for key, sub in body.items():
            if isinstance(sub, Mapping):
                table(f"{prefix}.{key}", sub)

    for section, body in document.items():
        table(section, body)
    return "\n".join(lines) + "\n"


def world_dir(root: Path, scenario: Scenario, size: int) -> Path:
    """The scenario's folder at one size: manifest, images and policy, written once (atomically)."""
    final = root / f"w{seed_of(scenario.name, size):08x}"
    if final.exists():
        return final
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    faces = _faces(scenario, size)
    (staging / "img").mkdir()
    names = [f"f{i}" for i in range(len(faces.group))]
    for i, name in enumerate(names):
        if i % _LINKS_PER_FILE == 0:
            original = staging / f"one-{i // _LINKS_PER_FILE}.png"
            original.write_bytes(_PNG)
        os.link(original, staging / "img" / f"{name}.png")
    manifest = pd.DataFrame(
        {
            "sample_id": names,
            "path": [f"img/{name}.png" for name in names],
            "emotion": np.asarray(scenario.emotions)[faces.emotion],
            "subject_id": [f"p{s}" for s in faces.subject],
        }
    )
    for attribute in scenario.groups[0].values:
        manifest[attribute] = [scenario.groups[g].values[attribute] for g in faces.group]
    manifest.to_csv(staging / "manifest.csv", index=False)
    (staging / "thresholds.toml").write_text(to_toml(policy_document(scenario)))
    try:
        staging.rename(final)
    except OSError:  # another worker finished the same world first: theirs is identical
        shutil.rmtree(staging)
    return final


def _faces(scenario: Scenario, size: int) -> Faces:
    return lay_out(scenario.groups, scenario.emotions, size, scenario.images_per_subject)


def run_one(sim: Simulation, root: Path) -> list[Outcome]:
    """One simulation through the product: draw answers, write the predictions file, prepare()."""
    from fer_fairness.config import load_thresholds
    from fer_fairness.session import RunState

    scenario = sim.scenario
    folder = world_dir(root, scenario, sim.size)
    seed = seed_of(scenario.name, sim.size, sim.index, "follow-up" if sim.follow_up else "")
    answers = Answerer.build(scenario.groups, scenario.emotions, scenario.person_sd).answer(
        _faces(scenario, sim.size), np.random.default_rng(seed)
    )
    predictions = folder / f"predictions-{os.getpid()}-{sim.index}.csv"
    pd.DataFrame({"sample_id": [f"f{i}" for i in range(len(answers))], "prediction": answers}).to_csv(
        predictions, index=False
    )
    try:
        state = RunState.from_options(
            thresholds=load_thresholds(folder / "thresholds.toml"),
            datasets=[f"manifest:{folder / 'manifest.csv'}?name=sim"],
            models=[f"predictions:{predictions}?name=m"],
            seed=seed,
            cache_dir=folder / "cache",
            report_dir=folder / "reports",
        )
        grouped = state.prepare()
    finally:
        predictions.unlink()
    return [
        Outcome(
            criterion=r.criterion,
            group=r.group,
            detail=r.detail,
            verdict=str(r.verdict),
            rule=getattr(r, "rule", None),  # the lead's new field; absent on older code
            required_n=r.required_n,
        )
        for records in grouped.values()
        for r in records
    ]


def _run_batch(batch: list[Simulation], root: str) -> list[list[Outcome] | str]:
    """Each simulation's outcomes, or the error it raised (a product bug, shown in the table, not fatal)."""
    results: list[list[Outcome] | str] = []
    for sim in batch:
        try:
            results.append(run_one(sim, Path(root)))
        except Exception as exc:  # noqa: BLE001 - any product error is reported, never hidden
            results.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
    return results


def simulate(sims: list[Simulation], *, root: Path, workers: int) -> Iterator[list[Outcome] | str]:
    """Every simulation's outcomes, in order, as they finish; batches keep worker round trips few."""
    if workers <= 1:
        for sim in sims:
            yield from _run_batch([sim], str(root))
        return
    # Load the product once, here, so every forked worker runs the same code even if files change.
    import fer_fairness.pipeline  # noqa: F401

    batches = [sims[i : i + 5] for i in range(0, len(sims), 5)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for batch in pool.map(_run_batch, batches, [str(root)] * len(batches)):
            yield from batch


@dataclass(frozen=True, kw_only=True)
class Measured:
    """One table row before rendering: how often the check's event happened, and the verdict mix."""

    scenario: Scenario
    check_index: int
    size: int
    sims: int
    events: int
    verdicts: Mapping[str, int]  # over the counted records of every simulation
    rules: Mapping[str, int]
    note: str = ""


def _counted(outcomes: Iterable[Outcome], scenario: Scenario, check) -> list[Outcome]:
    return [
        o
        for o in outcomes
        if (scenario.criterion is None or o.criterion == scenario.criterion)
        and (check.group is None or o.group == check.group)
        and (check.detail is None or o.detail == check.detail)
    ]


def _tally(records: list[Outcome]) -> tuple[dict[str, int], dict[str, int]]:
    verdicts = {v: sum(o.verdict == v for o in records) for v in ("PASS", "FAIL", "INCONCLUSIVE")}
    rules: dict[str, int] = {}
    for o in records:
        if o.rule:
            rules[o.rule] = rules.get(o.rule, 0) + 1
    return verdicts, rules


def measure(
    scenarios: list[Scenario],
    *,
    quick: bool,
    root: Path,
    workers: int,
    sims: int | None = None,
    sizes: tuple[int, ...] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Iterator[Measured]:
    """Run every scenario at every size; yield one Measured per (scenario, size, check)."""
    plan = [
        (scenario, size, sims or (scenario.quick_sims if quick else scenario.sims))
        for scenario in scenarios
        for size in (sizes or (scenario.quick_sizes if quick else scenario.sizes))
    ]
    batch = [Simulation(s, size, i) for s, size, count in plan for i in range(count)]
    results = simulate(batch, root=root, workers=workers)
    started = time.perf_counter()
    for scenario, size, count in plan:
        runs, note = _completed(itertools.islice(results, count))
        say(f"{time.perf_counter() - started:7.0f} s  {scenario.name} at n={size}: {count} runs {note}")
        if scenario.follow_up:
            yield from _follow_up(scenario, size, runs, root=root, workers=workers)
            continue
        for k, check in enumerate(scenario.checks):
            counted = [_counted(r, scenario, check) for r in runs]
            events = sum(any(o.verdict == check.event for o in records) for records in counted)
            verdicts, rules = _tally([o for records in counted for o in records])
            yield Measured(
                scenario=scenario,
                check_index=k,
                size=size,
                sims=len(runs),
                events=events,
                verdicts=verdicts,
                rules=rules,
                note=note,
            )


def _completed(results: Iterable[list[Outcome] | str]) -> tuple[list[list[Outcome]], str]:
    """The runs that completed, and a note counting those that raised (with the first error)."""
    results = list(results)
    errors = [r for r in results if isinstance(r, str)]
    runs = [r for r in results if not isinstance(r, str)]
    return runs, (f"{len(errors)} runs raised, e.g. {errors[0]}" if errors else "")


def _follow_up(scenario: Scenario, size: int, runs: list[list[Outcome]], *, root: Path, workers: int):
    """Re-simulate each INCONCLUSIVE record's world at the n per group its record said would settle it."""
    check = scenario.checks[0]
    wanted = []
    for index, outcomes in enumerate(runs):
        for o in _counted(outcomes, scenario, check):
            if o.verdict == "INCONCLUSIVE" and o.required_n is not None:
                wanted.append((index, o.required_n))
    too_large = [i for i, n in wanted if not math.isfinite(n) or n > FOLLOW_UP_CAP]
    follow = [Simulation(scenario, math.ceil(n), i, follow_up=True) for i, n in wanted if i not in too_large]
    settled_runs, errors = _completed(simulate(follow, root=root, workers=workers))
    counted = [_counted(r, scenario, check) for r in settled_runs]
    events = sum(all(o.verdict in ("PASS", "FAIL") for o in records) for records in counted)
    verdicts, rules = _tally([o for records in counted for o in records])
    sizes = sorted(math.ceil(n) for _, n in wanted if math.isfinite(n))
    median = sizes[len(sizes) // 2] if sizes else 0
    note = f"{len(wanted)} of {len(runs)} runs INCONCLUSIVE at n={size}; re-run at their required_n (median {median})"
    if too_large:
        note += f"; {len(too_large)} above {FOLLOW_UP_CAP} not re-run, counted unsettled"
    if errors:
        note += f"; {errors}"
    yield Measured(
        scenario=scenario,
        check_index=0,
        size=size,
        sims=len(wanted),
        events=events,
        verdicts=verdicts,
        rules=rules,
        note=note,
    )
