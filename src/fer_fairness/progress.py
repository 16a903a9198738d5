"""Progress for long work: a tqdm bar on a terminal, periodic plain lines in a CI log, or nothing.

tqdm redraws one line with carriage returns, which a CI log shows as one garbled line at the end
(or, disabled off a terminal, as nothing for an hour). Off a terminal a log needs whole lines,
few of them: one at most every ``every_s`` seconds, and none for work shorter than that.

The mode is ``"bar"``, ``"lines"`` or ``"off"``; ``True`` and ``False`` (what ``progress`` was
before modes) mean ``"bar"`` and ``"off"``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

MODES = ("bar", "lines", "off")
EVERY_S = 10.0


def mode_of(progress: bool | str | None) -> str:
    """The mode a ``progress`` setting names (bools from before modes are accepted)."""
    if progress is True:
        return "bar"
    if progress is False or progress is None:
        return "off"
    if progress not in MODES:
        raise ValueError(f"progress must be one of {', '.join(MODES)} (or a bool), got {progress!r}")
    return progress


def bar(total: int, desc: str, enabled: bool | str, *, unit: str = "img") -> Any:
    """A progress counter over ``total`` units, used as ``with bar(...) as b: ... b.update(n)``."""
    mode = mode_of(enabled)
    if mode == "bar":
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
    return Lines(total=total, desc=desc, unit=unit, enabled=mode == "lines")


def note(progress: Any, text: str, *, now: bool = False) -> None:
    """A short status shown beside the count (e.g. a cluster's actors and restarts); ``now`` writes a
    line at once off a terminal, for an event a log should not wait ``every_s`` to show."""
    if hasattr(progress, "set_postfix_str"):  # tqdm
        progress.set_postfix_str(text)
    else:
        progress.note(text, now=now)


class Lines:
    """Plain progress lines, at most one every ``every_s`` seconds; the clock and stream are injectable."""

    def __init__(
        self,
        *,
        total: int,
        desc: str,
        unit: str = "img",
        enabled: bool = True,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.every_s, self.clock = every_s, clock
        self.stream = stream  # None: sys.stderr at the time of writing (pytest swaps it while capturing)
        self.done = 0
        self.started = clock()
        self.last = self.started  # the first line waits a full interval: short work prints nothing
        self.printed = False
        self.status = ""

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self._write(self._line(now))

    def note(self, text: str, *, now: bool = False) -> None:
        self.status = text
        if self.enabled and now:
            self.last = self.clock()
            self._write(self._line(self.last))

    def close(self) -> None:
        """A closing line, only when progress was shown (so a log that showed work in flight sees it end)."""
        if self.enabled and self.printed:
            now = self.clock()
            self._write(self._line(now) + f", done in {now - self.started:.0f} s")
            self.printed = False

    def _line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        status = f"; {self.status}" if self.status else ""
        return (
            f"fer-fairness: {self.desc} {self.done}/{self.total} {self.unit}{share}, {rate:.3g} {self.unit}/s{status}"
        )

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()
        self.printed = True
