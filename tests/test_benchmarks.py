"""The benchmark runners run at CI size and print their tables (no timing is asserted: the machine varies)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_statistics_table():
    out = run("bench_statistics.py", "--sizes", "2000,4000", "--n-boot", "4")
    assert "command: python benchmarks/bench_statistics.py" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("2,000", "4,000"))]
    assert [r[0] for r in rows] == ["2,000", "4,000"]
    assert all(int(r[1]) > 0 for r in rows)  # tests were evaluated


def test_suite_table():
    out = run("bench_suite.py", "--images", "1000")  # 300 rows hit an OverflowError in katz_ratio (reported)
    assert "pytest (whole run)" in out and "HTML report rendered" in out
    assert "pytest again, warm cache" in out  # and its outcomes equal the cold run's (the bench checks)
    assert "passed" in out or "failed" in out


def test_api_table():
    out = run("bench_api.py", "--requests", "32", "--latency", "0.01")
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("clean", "10%"))}
    assert int(lines["clean"][2]) == 32  # one call per image
    assert int(lines["10%"][3]) > 32  # the injected faults were retried


def test_clip_table():
    pytest.importorskip("open_clip")
    out = run("bench_clip.py", "--images", "40", "--batch-size", "8", "--repeats", "1")
    assert "command: python benchmarks/bench_clip.py" in out
    assert "same answers as bare: 1.000" in out  # the adapter picks what the bare loop picks
    assert "warm model calls: encode_image 0," in out  # the warm run reads every image embedding from the cache
    ratios = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("adapter /", "warm /"))}
    assert float(ratios["adapter"][3]) > 0 and float(ratios["warm"][3]) > 0
