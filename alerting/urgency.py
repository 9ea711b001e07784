"""Bulk writers step aside while an alert is on its way.

SQLite has a single write lock. An SOS needs three write transactions in a row (alert opened,
message claimed, message recorded), and each one that finds the activity rollup writing waits
for its chunk and then for SQLite's busy back-off (1, 2, 5, 10 ms…). The urgent side notes its
work; the bulk side waits for a quiet moment before each chunk, and goes ahead anyway after a
bounded delay so that a storm of alerts cannot starve the charts. The two sides live in
different processes (alerting/activity.py), so the moment of the last note is kept in shared
memory; the monotonic clock is the same for every process on the machine.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

QUIET_S = 0.25  # far longer than an SOS takes from consumer to Twilio (≈ 12 ms idle)
MAX_DEFER_S = 2.0


class UrgentWork:
    def __init__(
        self,
        quiet_s: float = QUIET_S,
        max_defer_s: float = MAX_DEFER_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._quiet_s = quiet_s
        self._max_defer_s = max_defer_s
        self._clock = clock
        self._sleep = sleep
        self._last = multiprocessing.get_context("spawn").Value("d", float("-inf"))

    def note(self) -> None:
        """Called by the alert path as it starts and as it finishes each step."""
        self._last.value = self._clock()

    def wait_for_quiet(self) -> float:
        """Until the alert path has been quiet for a while, at most `max_defer_s`; returns seconds waited."""
        started = self._clock()
        deadline = started + self._max_defer_s
        while True:
            now = self._clock()
            quiet_at = self._last.value + self._quiet_s
            if now >= quiet_at or now >= deadline:
                return now - started
            self._sleep(min(quiet_at, deadline) - now)
