"""The activity rollup's writer waits for the alert path to go quiet, but not for ever."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alerting.urgency import UrgentWork


class FakeClock:
    """Time moves only when the writer sleeps; `during_sleep` lets the alert path act meanwhile."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps = 0
        self.during_sleep: Callable[[], None] = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += min(seconds, 0.1)  # woken early, as a real sleep may be
        self.during_sleep()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def urgent(clock: FakeClock) -> UrgentWork:
    return UrgentWork(quiet_s=0.25, max_defer_s=2.0, clock=clock, sleep=clock.sleep)


def test_no_wait_when_no_alert_is_on_its_way(clock: FakeClock, urgent: UrgentWork) -> None:
    assert urgent.wait_for_quiet() == 0
    assert clock.sleeps == 0


def test_waits_until_quiet_after_the_last_note(clock: FakeClock, urgent: UrgentWork) -> None:
    urgent.note()
    clock.now += 0.1
    assert urgent.wait_for_quiet() == pytest.approx(0.15)


def test_a_note_while_waiting_extends_the_wait(clock: FakeClock, urgent: UrgentWork) -> None:
    urgent.note()

    def outbox_claims_once() -> None:
        if clock.sleeps == 1:
            urgent.note()

    clock.during_sleep = outbox_claims_once
    assert urgent.wait_for_quiet() == pytest.approx(0.1 + 0.25)


def test_a_storm_of_alerts_defers_the_writer_only_so_long(clock: FakeClock, urgent: UrgentWork) -> None:
    clock.during_sleep = urgent.note
    urgent.note()
    assert urgent.wait_for_quiet() == pytest.approx(2.0)
