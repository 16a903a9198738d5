"""The count bootstrap's cost does not grow with the number of images; a row bootstrap's does.

    python benchmarks/bench_bootstrap.py [--resamples 2000]

Builds count tensors (3 groups x 7 emotions x 10 outcomes) for 1,000 and 100,000 images, times the
count bootstrap of an accuracy spread on each, and, for contrast, a plain row bootstrap of the same
statistic. Prints seconds and the large/small ratios (the machine is shared: read ratios, not times).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fer_fairness.stats import bootstrap_counts

GROUPS, EMOTIONS, OUTCOMES = 3, 7, 10
CORRECT = np.eye(EMOTIONS, OUTCOMES, dtype=bool)


def spread(tensors: np.ndarray) -> np.ndarray:
    accuracy = (tensors * CORRECT).sum(axis=(2, 3)) / tensors.sum(axis=(2, 3))
    return accuracy.max(axis=1) - accuracy.min(axis=1)


def counts_for(images: int, rng: np.random.Generator) -> np.ndarray:
    per_row = images // (GROUPS * EMOTIONS)
    tensor = np.empty((GROUPS, EMOTIONS, OUTCOMES), dtype=np.int64)
    for g in range(GROUPS):
        for t in range(EMOTIONS):  # mostly right, the rest spread over the other outcomes
            tensor[g, t] = rng.multinomial(per_row, rng.dirichlet(np.ones(OUTCOMES) + 8 * CORRECT[t]))
    return tensor


def row_bootstrap(counts: np.ndarray, resamples: int, rng: np.random.Generator) -> None:
    groups, emotions, outcomes = np.nonzero(counts)
    weights = counts[groups, emotions, outcomes]
    rows = np.repeat(np.stack([groups, emotions, outcomes], axis=1), weights, axis=0)
    for _ in range(resamples):
        picked = rows[rng.integers(0, len(rows), len(rows))]
        tensor = np.zeros_like(counts)
        np.add.at(tensor, tuple(picked.T), 1)
        spread(tensor[None])


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for images in (1_000, 100_000):
        counts = counts_for(images, rng)
        count_s = timed(
            lambda c=counts: bootstrap_counts(
                counts=c, statistic=spread, n_resamples=args.resamples, confidence=0.95, rng=np.random.default_rng(1)
            )
        )
        row_s = timed(lambda c=counts: row_bootstrap(c, max(args.resamples // 20, 10), np.random.default_rng(1)))
        results[images] = (count_s, row_s * 20)  # the row bootstrap ran 1/20 of the resamples
        print(f"{images:>7} images: count bootstrap {count_s:.3f} s, row bootstrap ~{row_s * 20:.3f} s")
    (small_count, small_row), (large_count, large_row) = results[1_000], results[100_000]
    print(
        f"100x the images: count bootstrap x{large_count / small_count:.2f}, row bootstrap x{large_row / small_row:.1f}"
    )


if __name__ == "__main__":
    main()
