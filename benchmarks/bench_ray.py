"""Local vs Ray inference throughput for a batch classifier, and the per-image overhead Ray adds.

    python benchmarks/bench_ray.py [--images 2000] [--work-ms 4] [--actors 2] [--batch-size 32]

The model is a stand-in whose cost per image is set by --work-ms (a CPU-bound numpy loop), so the
figures are about the engine, not a network. Both engines answer every image from scratch (empty
caches); the tables they produce are checked to be identical. Prints images per second for each
engine, their ratio, and Ray's overhead per image: (ray seconds x actors - local seconds) / images,
the extra work each image costs across the pool (start-up included, reported separately).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fer_fairness.datasets._table import Dataset
from fer_fairness.engines import parse_engine
from fer_fairness.models._base import PredictContext
from fer_fairness.models._batch import BatchModel

LABELS = ["angry", "happy", "neutral"]


class Busy:
    """Scores from pixel statistics after a fixed amount of arithmetic per image (a stand-in network):
    the same work, so the same scores, wherever it runs."""

    def __init__(self, iterations: int):
        self.iterations = iterations

    def __call__(self, images):
        rows = []
        for image in images:
            pixels = np.asarray(image, dtype=np.float64) / 255
            value = pixels
            for _ in range(self.iterations):
                value = np.sqrt(value * value + 1e-9)
            rows.append([pixels.mean(), value.std(), 1 - pixels.mean()])
        return np.array(rows)


def iterations_for(work_ms: float) -> int:
    """How many loop iterations take about ``work_ms`` on this machine (measured once)."""
    value, start = np.ones((16, 16)), time.perf_counter()
    for _ in range(2000):
        value = np.sqrt(value * value + 1e-9)
    per_iteration_ms = (time.perf_counter() - start) / 2000 * 1000
    return max(1, round(work_ms / per_iteration_ms))


def make_dataset(root: Path, images: int) -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(images):
        path = root / f"{i:06d}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
        rows.append({"sample_id": f"s{i}", "path": path.name, "emotion": "neutral", "subject_id": f"p{i}", "g": "a"})
    return Dataset(name="bench", root=root, samples=pd.DataFrame(rows), attributes=("g",), emotions=("neutral",))


def timed(dataset: Dataset, engine, *, iterations: int, batch_size: int, cache: Path) -> tuple[float, pd.DataFrame]:
    model = BatchModel("busy", Busy(iterations), labels=LABELS, batch_size=batch_size, version="1")
    context = PredictContext(seed=0, cache_dir=cache, progress="off", engine=engine)
    start = time.perf_counter()
    table = model.predict(dataset, context=context)
    return time.perf_counter() - start, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--work-ms", type=float, default=4.0)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "images").mkdir()
        dataset = make_dataset(root / "images", args.images)
        iterations = iterations_for(args.work_ms)
        local_s, local = timed(dataset, None, iterations=iterations, batch_size=args.batch_size, cache=root / "c1")
        engine = parse_engine(f"ray?actors={args.actors}")
        start = time.perf_counter()
        engine._start()  # noqa: SLF001 - start-up is reported on its own line
        startup_s = time.perf_counter() - start
        ray_s, sharded = timed(dataset, engine, iterations=iterations, batch_size=args.batch_size, cache=root / "c2")
    pd.testing.assert_frame_equal(local, sharded)
    overhead_ms = (ray_s * args.actors - local_s) / args.images * 1000
    print(f"python benchmarks/bench_ray.py --images {args.images} --work-ms {args.work_ms} --actors {args.actors}")
    print("| engine | seconds | images/s |")
    print("|---|---|---|")
    print(f"| local (1 process) | {local_s:.2f} | {args.images / local_s:.0f} |")
    print(f"| ray ({args.actors} actors) | {ray_s:.2f} | {args.images / ray_s:.0f} |")
    print(f"ray/local throughput ratio: {local_s / ray_s:.2f} (ideal {args.actors:.0f} on {args.actors} free cores)")
    print(f"ray overhead per image across the pool: {overhead_ms:.2f} ms; ray start-up (once): {startup_s:.1f} s")


if __name__ == "__main__":
    main()
