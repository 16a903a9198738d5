"""The whole product on 10k, 100k and 1M predictions, against Fairlearn's MetricFrame bootstrap.

    python benchmarks/bench_statistics.py [--sizes 10000,100000,1000000] [--n-boot 200]

Per size, in a fresh process each (so peak memory is that size's own): a manifest of N rows
(race x gender, 14 groups, 7 emotions; rows share 300 tiny PNGs) and a predictions file are loaded,
counted and evaluated under every criterion the default policy enables -- the product end to end,
through ``pipeline.load`` and ``pipeline.run`` as the plugin calls them, pytest itself excluded (see
bench_suite.py). On the same data Fairlearn's ``MetricFrame`` computes per-group accuracy with an
``n_boot`` bootstrap; where that would take long it runs fewer resamples and is scaled up linearly
(the table says so). Prints ratios measured side by side in this one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_statistics.py` as well as `python -m benchmarks....`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._data import Clock, peak_rss_mb, write_run

COMMAND = "python benchmarks/bench_statistics.py"
FAIRLEARN_BUDGET_S = 60.0  # per size: beyond this the bootstrap is measured on fewer resamples and scaled


def product(folder: Path, n: int) -> dict:
    """Load, predict (read the file), count and evaluate: stage seconds, test count and peak RSS."""
    from fer_fairness import pipeline
    from fer_fairness.config import load_thresholds
    from fer_fairness.session import RunState

    manifest, predictions = folder / "faces.csv", folder / "faces-model0.csv"  # written by the parent
    before = peak_rss_mb()
    clock = Clock()
    state = RunState.from_options(
        thresholds=load_thresholds(None),
        datasets=[f"manifest:{manifest}?name=faces"],
        models=[f"predictions:{predictions}?name=vendor"],
        seed=0,
        cache_dir=folder / "cache",
        report_dir=folder / "reports",
        limits={},
    )
    with clock("load"):
        pipeline.load(state)
    with clock("plan"):
        pipeline.plan(state)
    with clock("run"):
        records, _ = pipeline.run(state)
    return {"seconds": clock.seconds, "tests": len(records), "rss_mb": peak_rss_mb(), "rss_before_mb": before}


def fairlearn_bootstrap(folder: Path, n_boot: int) -> dict:
    """Fairlearn's per-group accuracy with an n_boot bootstrap on the same rows (race x gender)."""
    import pandas as pd
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    manifest = pd.read_csv(folder / "faces.csv", dtype=str)
    predicted = pd.read_csv(folder / "faces-model0.csv", dtype=str)
    table = manifest.merge(predicted, on="sample_id")
    kwargs = {
        "metrics": accuracy_score,
        "y_true": table["emotion"],
        "y_pred": table["prediction"],
        "sensitive_features": table[["race", "gender"]],
    }
    start = time.perf_counter()
    MetricFrame(**kwargs, n_boot=2, ci_quantiles=[0.025, 0.975], random_state=0)
    probe = (time.perf_counter() - start) / 2  # per resample, roughly
    resamples = n_boot if probe * n_boot <= FAIRLEARN_BUDGET_S else max(2, int(FAIRLEARN_BUDGET_S / probe))
    start = time.perf_counter()
    MetricFrame(**kwargs, n_boot=resamples, ci_quantiles=[0.025, 0.975], random_state=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds * n_boot / resamples, "resamples": resamples}


def one(folder: Path, n: int, n_boot: int) -> dict:
    result = product(folder, n)
    result["fairlearn"] = fairlearn_bootstrap(folder, n_boot) if n_boot else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated prediction counts")
    parser.add_argument("--n-boot", type=int, default=200, help="Fairlearn bootstrap resamples (0: skip Fairlearn)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the per-size child process
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # where the parent wrote that size's files
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(Path(args.folder), args.one, args.n_boot)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for n in sizes:
        # The files are written here, so the child's peak memory is the product's own, not the writer's.
        with tempfile.TemporaryDirectory(prefix="fer-bench-stats-") as tmp:
            write_run(Path(tmp), n)
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--folder", tmp, "--n-boot", str(args.n_boot)],
                capture_output=True,
                text=True,
                check=False,
            )
        if child.returncode:
            print(child.stderr, file=sys.stderr)
            return child.returncode
        results[n] = json.loads(child.stdout.strip().splitlines()[-1])
    first = results[sizes[0]]
    total = {n: sum(r["seconds"].values()) for n, r in results.items()}
    print(f"command: {COMMAND} --sizes {args.sizes} --n-boot {args.n_boot}")
    print(
        f"{'predictions':>12}{'tests':>7}{'load s':>8}{'plan s':>8}{'run s':>8}{'total s':>9}"
        f"{'x first':>9}{'RSS MiB':>9}{'RSS/1GiB':>10}{'fairlearn s':>13}{'ours/FL':>9}"
    )
    for n, r in results.items():
        s = r["seconds"]
        fl = r["fairlearn"]
        fl_text = f"{fl['seconds']:>12.1f}{'*' if fl['resamples'] < args.n_boot else ' '}" if fl else f"{'-':>13}"
        ratio = f"{total[n] / fl['seconds']:>9.3f}" if fl else f"{'-':>9}"
        print(
            f"{n:>12,}{r['tests']:>7}{s['load']:>8.2f}{s['plan']:>8.2f}{s['run']:>8.2f}{total[n]:>9.2f}"
            f"{total[n] / total[sizes[0]]:>9.2f}{r['rss_mb']:>9.0f}{r['rss_mb'] / 1024:>10.3f}{fl_text}{ratio}"
        )
    scaled = [n for n, r in results.items() if r["fairlearn"] and r["fairlearn"]["resamples"] < args.n_boot]
    if scaled:
        print(
            "* Fairlearn ran "
            + ", ".join(f"{results[n]['fairlearn']['resamples']} resamples at {n:,}" for n in scaled)
            + f", scaled linearly to {args.n_boot}"
        )
    print(f"RSS of the child before the product ran (interpreter + imports): {first['rss_before_mb']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
