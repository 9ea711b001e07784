"""Pure core of the night pattern: sustained activity in this person's deep night, on one channel.

A home has two: steps while the watch is worn, and water or gas use, which still sees a
resident who takes the watch off at night. Each learns how often its channel is active in each
half hour of the day. In the person's deep night it looks at the last hour: the chance of that
many active 5-minute slots under a binomial with the learned rate, times 8 (windows per night),
raised to the share of past nights that reached as many if some did.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

BINS_PER_DAY = 48
WINDOW_TICKS = 12
WINDOWS_PER_NIGHT = 8
RATE_FLOOR = 0.01


def _binomial_tail(n: int, k: int, p: float) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


@dataclass(frozen=True, slots=True)
class Wandering:
    active_ticks: int
    window_ticks: int  # from the first active slot of the window to now
    probability: float


@dataclass(slots=True)
class NightWatch:
    """One channel's night-time activity rate per half hour, its nights' peaks and tonight's window."""

    min_ticks: int
    active: array[float] = field(default_factory=lambda: array("f", bytes(4 * BINS_PER_DAY)))
    total: array[float] = field(default_factory=lambda: array("f", bytes(4 * BINS_PER_DAY)))
    nights: array[float] = field(default_factory=lambda: array("f", bytes(4 * (WINDOW_TICKS + 1))))
    mask: int = 0
    night_ticks: int = 0
    tonight_max: int = 0
    alerted: bool = False

    def rate(self, tod: int, prior: float, weight: float) -> float:
        """How often this channel is active in this half hour, leaning on ``prior`` while little is known."""
        return (self.active[tod] + weight * prior) / (self.total[tod] + weight)

    def step(self, tod: int, active: bool, learn: bool, deep: bool, rate: float, alpha: float) -> Wandering | None:
        """One tick; a wandering when the last hour of a deep night is this improbable (below ``alpha``), once."""
        self.mask = ((self.mask << 1) | int(active)) & ((1 << WINDOW_TICKS) - 1)
        if not deep:
            if self.night_ticks and learn:
                self.nights[min(WINDOW_TICKS, self.tonight_max)] += 1
            self.night_ticks = self.tonight_max = 0
            self.alerted = False
            self._learn(tod, active, learn)
            return None
        self.night_ticks += 1
        window = self.mask & ((1 << min(self.night_ticks, WINDOW_TICKS)) - 1)
        count = window.bit_count()
        self.tonight_max = max(self.tonight_max, count)
        # A wandering episode must not teach the night that wandering is normal while it lasts.
        self._learn(tod, active, learn and count < 2)
        if count < 2:
            self.alerted = False
        if count < self.min_ticks or self.alerted or not alpha:
            return None
        per_night = min(1.0, WINDOWS_PER_NIGHT * _binomial_tail(WINDOW_TICKS, count, max(RATE_FLOOR, rate)))
        reached = sum(self.nights[count:])
        p = max(per_night, reached / (sum(self.nights) + 1)) if reached else per_night
        if p >= alpha:
            return None
        self.alerted = True
        return Wandering(active_ticks=count, window_ticks=window.bit_length(), probability=p)

    def _learn(self, tod: int, active: bool, learn: bool) -> None:
        if learn:
            self.total[tod] += 1
            if active:
                self.active[tod] += 1

    def decay(self, factor: float) -> None:
        for arr in (self.active, self.total, self.nights):
            for i in range(len(arr)):
                arr[i] *= factor
