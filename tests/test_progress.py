"""Progress: plain lines off a terminal, at most one per interval, none for short work (a fake clock)."""

import io

import pytest

from fer_fairness.progress import Lines, bar, mode_of


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def lines(total, *, enabled=True):
    clock, stream = Clock(), io.StringIO()
    return Lines(total=total, desc="toy-net", enabled=enabled, clock=clock, stream=stream), clock, stream


def test_short_work_prints_nothing():
    progress, clock, stream = lines(100)
    with progress:
        for _ in range(100):
            clock.now += 0.09  # 9 s in all: under one interval
            progress.update()
    assert stream.getvalue() == ""


def test_long_work_prints_a_line_per_interval_and_a_closing_line():
    progress, clock, stream = lines(5880)
    with progress:
        for _ in range(5880):
            clock.now += 1 / 32  # 32 img/s (exact in binary): 183.75 s in all
            progress.update()
    shown = stream.getvalue().splitlines()
    # A line when 10 s have passed since the last: at 10, 20, ... 180 s (18 lines), then the closing one.
    assert len(shown) == 19
    assert shown[0] == "fer-fairness: toy-net 320/5880 img (5%), 32 img/s"
    assert shown[-1] == "fer-fairness: toy-net 5880/5880 img (100%), 32 img/s, done in 184 s"


def test_a_burst_after_a_long_wait_prints_one_line():
    progress, clock, stream = lines(10)
    clock.now += 60
    for _ in range(10):
        progress.update()  # ten updates at one instant: one line, not ten
    assert len(stream.getvalue().splitlines()) == 1


def test_off_prints_nothing_however_long():
    progress, clock, stream = lines(10, enabled=False)
    with progress:
        for _ in range(10):
            clock.now += 100
            progress.update()
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("given", "mode"), [(True, "bar"), (False, "off"), (None, "off"), ("lines", "lines")])
def test_modes_accept_the_old_bools(given, mode):
    assert mode_of(given) == mode


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="progress must be one of bar, lines, off"):
        mode_of("fancy")


def test_bar_off_a_terminal_is_lines(capsys):
    with bar(3, "x", "lines") as counter:
        counter.update(3)
    assert isinstance(counter, Lines)
    assert capsys.readouterr().err == ""  # instantaneous work
