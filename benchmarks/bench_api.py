"""The OpenAI adapter against a local OpenAI-compatible server with 200 ms latency, clean and with faults.

    python benchmarks/bench_api.py [--requests 1000] [--concurrency 16] [--latency 0.2]

The server is the test suite's FakeAPI (tests/models/fake_api.py) with its latency option. Each
request is one distinct image; the ideal time is requests x latency / concurrency. The second run
answers 10% of the images first with a 429 (Retry-After: 1) or a 500, then properly, so the adapter's
retries and backoff are in the figure (a request waiting out its Retry-After frees its worker for
other images meanwhile: models/resilience.py). Real sleeps, a fresh response cache per run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# The server lives with the tests (tests/models/fake_api.py): the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_fairness.models._base import PredictContext
from fer_fairness.models.openai_chat import OpenAIChatModel
from tests.models.fake_api import FakeAPI, parse_spec, tiny_dataset

COMMAND = "python benchmarks/bench_api.py"
TARGETS = {"clean": 1.25, "10% 429/500": 1.6}


def one_run(folder: Path, *, requests: int, concurrency: int, latency: float, faults: bool) -> tuple[float, int]:
    dataset, digests = tiny_dataset(folder / "images", [("neutral", "a")] * requests)
    with FakeAPI(latency_s=latency) as api:
        if faults:
            for i, image in enumerate(list(digests.values())[::10]):
                api.script(image, "429:1" if i % 2 == 0 else "500")
        model = OpenAIChatModel(
            parse_spec("openai:gpt-test"), env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{api.url}/v1"}
        )
        context = PredictContext(
            seed=0, cache_dir=folder / "cache", progress=False, concurrency=concurrency, timeout_s=30.0, max_retries=4
        )
        start = time.perf_counter()
        outcomes = model.predict(dataset, context=context)
        seconds = time.perf_counter() - start
        if len(outcomes) != requests:
            raise SystemExit(f"expected {requests} outcomes, got {len(outcomes)}")
        return seconds, api.count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2, help="server latency in seconds")
    args = parser.parse_args(argv)
    ideal = args.requests * args.latency / args.concurrency
    print(f"command: {COMMAND} --requests {args.requests} --concurrency {args.concurrency} --latency {args.latency}")
    print(f"ideal: {args.requests} x {args.latency} s / {args.concurrency} = {ideal:.2f} s")
    print(f"{'run':<14}{'seconds':>9}{'calls':>7}{'/ ideal':>9}{'target':>8}{'/ clean':>9}")
    clean = None
    for label, faults in (("clean", False), ("10% 429/500", True)):
        with tempfile.TemporaryDirectory(prefix="fer-bench-api-") as tmp:
            seconds, calls = one_run(
                Path(tmp), requests=args.requests, concurrency=args.concurrency, latency=args.latency, faults=faults
            )
        clean = clean or seconds  # the faults' own cost, whatever the machine's load does to both runs
        ratios = f"{seconds / ideal:>9.2f}{TARGETS[label]:>8.2f}{seconds / clean:>9.2f}"
        print(f"{label:<14}{seconds:>9.2f}{calls:>7}{ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
