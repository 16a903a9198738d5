"""What a cluster run adds to progress: the actors that answered and their restarts (no Ray needed)."""

import io

from fer_fairness.engines import Actors
from fer_fairness.progress import Lines, bar, note

RESTARTED = "2 actor(s), 1 died and restarted (a1: 1); their batches retried"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_second_process_under_one_actor_is_one_restart_of_that_actor():
    actors = Actors()
    assert actors.saw(["a1/10", "a1/10"]) is True  # a new actor is news
    assert actors.saw(["a1/10"]) is False
    assert actors.saw(["b2/11"]) is True
    assert actors.summary() == "2 actor(s)" and actors.restarts() == {}
    assert actors.saw(["a1/12"]) is True  # same actor id, new process: Ray restarted it
    assert actors.restarts() == {"a1": 1}
    assert actors.summary() == "2 actor(s), 1 died and restarted (a1: 1); their batches retried"
    actors.saw(["b2/13"])
    actors.saw(["a1/14"])
    assert actors.restarts() == {"a1": 2, "b2": 1}
    assert "3 died and restarted (a1: 2, b2: 1)" in actors.summary()


def test_a_note_rides_on_the_periodic_line_and_an_urgent_one_is_written_at_once():
    clock, stream = Clock(), io.StringIO()
    with Lines(total=100, desc="net", clock=clock, stream=stream) as progress:
        note(progress, "2 actor(s)")
        assert stream.getvalue() == ""  # not news a log needs before the next line
        clock.now += 10
        progress.update(40)
        note(progress, RESTARTED, now=True)
        clock.now += 1
        progress.update(60)
    shown = stream.getvalue().splitlines()
    assert shown[0] == "fer-fairness: net 40/100 img (40%), 4 img/s; 2 actor(s)"
    assert shown[1] == "fer-fairness: net 40/100 img (40%), 4 img/s; " + RESTARTED
    assert shown[2].startswith("fer-fairness: net 100/100 img (100%), 9.09 img/s; 2 actor(s), 1 died")
    assert len(shown) == 3


def test_a_note_off_or_on_a_terminal_bar_never_fails():
    with bar(10, "net", "off") as quiet:
        note(quiet, "2 actor(s)", now=True)
        quiet.update(10)
    terminal = bar(10, "net", "bar")
    note(terminal, "2 actor(s)")
    assert "2 actor(s)" in str(terminal)
    terminal.close()
