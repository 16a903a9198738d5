"""Suite overhead: 3 models x 3 datasets x every default criterion through `pytest fairness_tests`.

    python benchmarks/bench_suite.py [--images 5000]

Inference is excluded: each model is a predictions file answering all three datasets. Runs pytest in
a subprocess (as a user would: collection, evaluation, thousands of tests, reports), then times the
HTML report rendered again from the run's fairness.json and the same run again on its warm cache
(verdicts read from the evaluation cache), and compares them with their targets (10 s and 2 s) and
with `pytest --collect-only` on the same options.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from benchmarks._data import write_run

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python benchmarks/bench_suite.py"
SUITE_TARGET_S, HTML_TARGET_S = 10.0, 2.0


def write_suite(folder: Path, images: int, *, models: int = 3, datasets: int = 3) -> list[str]:
    """The pytest options naming ``datasets`` manifests and ``models`` predictions files."""
    options, answers = [], [[] for _ in range(models)]
    for d in range(datasets):
        name = f"set{d}"
        manifest, files = write_run(folder / name, images, seed=d, name=name, models=models)
        options += ["--fairness-dataset", f"manifest:{manifest}?name={name}"]
        for m, file in enumerate(files):
            answers[m].append(pd.read_csv(file, dtype=str).assign(dataset=name))
    for m, tables in enumerate(answers):
        path = folder / f"model{m}.csv"
        pd.concat(tables).to_csv(path, index=False)
        options += ["--fairness-model", f"predictions:{path}?name=model{m}"]
    return options


def pytest_run(options: list[str], folder: Path, *extra: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "pytest", "fairness_tests", "-q", "-p", "no:cacheprovider", *options, *extra]
    command += ["--fairness-report-dir", str(folder / "reports"), "--fairness-cache-dir", str(folder / "cache")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: some fairness tests failed, as they should on this data
        raise SystemExit(f"pytest exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


def html_seconds(folder: Path) -> float:
    from fer_fairness.report.html import render_html

    document = json.loads(next((folder / "reports").rglob("fairness.json")).read_text(encoding="utf-8"))
    start = time.perf_counter()
    render_html(records=document["tests"], facts=document["run"], decision=document.get("decision"))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000, help="rows per dataset")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fer-bench-suite-") as tmp:
        folder = Path(tmp)
        options = write_suite(folder, args.images)
        collect_s, _ = pytest_run(options, folder / "collect", "--collect-only")
        suite_s, summary = pytest_run(options, folder)
        html_s = html_seconds(folder)
        warm_s, warm_summary = pytest_run(options, folder)  # the same cache: verdicts read, not evaluated
        if warm_summary.split(" in ")[0] != summary.split(" in ")[0]:  # the same outcomes, not the same seconds
            raise SystemExit(f"the warm run's outcome differs from the cold run's: {warm_summary} vs {summary}")
    print(f"command: {COMMAND} --images {args.images}")
    print(f"suite: 3 models x 3 datasets x {args.images:,} images, pytest says: {summary}")
    print(f"{'measure':<34}{'seconds':>9}{'/ target':>10}{'/ collect':>11}")
    print(f"{'pytest --collect-only':<34}{collect_s:>9.2f}{'-':>10}{1:>11.2f}")
    print(f"{'pytest (whole run)':<34}{suite_s:>9.2f}{suite_s / SUITE_TARGET_S:>10.2f}{suite_s / collect_s:>11.2f}")
    print(f"{'HTML report rendered':<34}{html_s:>9.2f}{html_s / HTML_TARGET_S:>10.2f}{html_s / collect_s:>11.2f}")
    print(f"{'pytest again, warm cache':<34}{warm_s:>9.2f}{warm_s / SUITE_TARGET_S:>10.2f}{warm_s / collect_s:>11.2f}")
    print(f"warm / cold run: {warm_s / suite_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
