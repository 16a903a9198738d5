"""``python -m simulations [--quick] [--only NAME ...] [--workers N] [--write]``: print the promise table."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from simulations.harness import measure
from simulations.scenarios import SCENARIOS, select
from simulations.table import render

RESULTS = Path(__file__).with_name("results.md")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer simulations and sizes (a few minutes)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="scenarios whose name starts with NAME")
    parser.add_argument("--sims", type=_positive, help="simulations per scenario and size (overrides the defaults)")
    parser.add_argument("--sizes", type=_positive, nargs="+", metavar="N", help="n per group (overrides the defaults)")
    parser.add_argument("--workers", type=_positive, default=2, help="worker processes (default 2)")
    parser.add_argument("--write", action="store_true", help=f"also write the table to {RESULTS}")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        scenarios = select(SCENARIOS, args.only)
    except ValueError as exc:
        parser.error(str(exc))
    if args.list:
        for s in scenarios:
            print(f"{s.name}: {s.truth}")
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fer-sim-") as root:
        measured = list(
            measure(
                scenarios,
                quick=args.quick,
                root=Path(root),
                workers=args.workers,
                sims=args.sims,
                sizes=tuple(args.sizes) if args.sizes else None,
                say=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    command = "python -m simulations " + " ".join(argv if argv is not None else sys.argv[1:])
    page = render(measured, command=command.strip(), seconds=time.perf_counter() - started)
    print(page, end="")
    if args.write:
        RESULTS.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
