"""The alerting process's clock for deadlines: UTC that never runs backwards and advances at the monotonic rate.

Escalation deadlines and the outbox's retry times are stored as UTC so that they survive a
restart, but in a running process they must not wait on the wall clock: stepped back an hour
(a bad NTP server, a hand-set clock), a wall-clock comparison leaves every due escalation
waiting an hour. This clock starts at the wall clock and then counts monotonic seconds. A step
back of the wall clock is ignored: the clock keeps going at the monotonic rate, ahead of the
wall clock by the step, until the process restarts. A step forward is followed at once, since
the wall clock was then behind: each escalation due within the step moves on by one step
early, which errs towards calling sooner. After a restart the wall clock is trusted again, so
a step back while the alerting service is down delays the deadlines stored before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from carebed.schemas import utc_now


class SteadyClock:
    def __init__(self, wall: Callable[[], datetime] = utc_now, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._base, self._base_mono = wall(), monotonic()

    def __call__(self) -> datetime:
        with self._lock:
            mono, wall = self._monotonic(), self._wall()
            steady = self._base + timedelta(seconds=mono - self._base_mono)
            if wall > steady:
                self._base, self._base_mono = wall, mono
                return wall
            return steady


steady_now = SteadyClock()
"""The one clock of this process: the escalator, the store's escalation steps and the outbox share it."""
