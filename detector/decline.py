"""Pure core of the decline pattern: days much less active than this home's usual days (an illness coming on).

Each fully observed day is summed on every channel the home has: 5-minute slots with any
activity, steps, litres of water and m³ of gas above any trickle. A day's score is the mean,
over the channels this home uses, of the log of the day's total over the channel's median of
the usual days (up to three weeks of them), so a fall shows whichever channel carries it and a
channel's scale does not matter. A channel with nothing all day is left out of that day: an
illness lowers use, while a channel gone silent alone is a trip with the watch or a meter off
the network; a day with every channel silent scores as usual (a silence is the inactivity
pattern's to judge). Two days running that score lower than every usual day did,
at under 70 % of usual, are a decline: under exchangeable days a usual day is the lowest of
n + 1 with chance 1 / (n + 1), two running about 1 / (n + 1)². Days of a decline are not
learned as usual until activity is back above 85 %.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from statistics import median

CHANNELS = 4  # active slots, steps, litres of water, m³ of gas
USUAL_DAYS = 21
MIN_USUAL_DAYS = 10
SHARE = 0.7
RECOVERED = 0.85


@dataclass(frozen=True, slots=True)
class Decline:
    share: float  # the last two days' activity as a share of usual (geometric mean over the channels used)
    usual_days: int


@dataclass(slots=True)
class DailyTotals:
    """The usual days (newest last) and the two most recent, one row of ``CHANNELS`` totals each."""

    usual: array[float] = field(default_factory=lambda: array("f"))
    recent: array[float] = field(default_factory=lambda: array("f"))
    declined: bool = False

    def add_day(self, totals: tuple[float, ...], share_limit: float = SHARE) -> Decline | None:
        """Learn one fully observed day; a decline the first time two low days in a row make one."""
        assert len(totals) == CHANNELS
        self.recent.extend(totals)
        if len(self.recent) > 2 * CHANNELS:
            oldest = self.recent[:CHANNELS]
            del self.recent[:CHANNELS]
            if not self.declined:
                self.usual.extend(oldest)
                del self.usual[: max(0, len(self.usual) - USUAL_DAYS * CHANNELS)]
        days = len(self.usual) // CHANNELS
        if days < MIN_USUAL_DAYS or len(self.recent) < 2 * CHANNELS:
            return None
        medians = [median(self.usual[c::CHANNELS]) for c in range(CHANNELS)]
        if not any(medians):
            return None
        last = [self._score(self.recent[i : i + CHANNELS], medians) for i in (0, CHANNELS)]
        if self.declined:
            self.declined = last[1] <= math.log(RECOVERED)
            return None
        rows = range(0, len(self.usual), CHANNELS)
        lowest_usual = min(self._score(self.usual[i : i + CHANNELS], medians) for i in rows)
        share = math.exp(sum(last) / 2)
        if max(last) >= lowest_usual or share > share_limit:
            return None
        self.declined = True
        return Decline(share=share, usual_days=days)

    @staticmethod
    def _score(day: array[float] | list[float], medians: list[float]) -> float:
        logs = [math.log(v / m) for v, m in zip(day, medians, strict=True) if m > 0 and v > 0]
        return sum(logs) / len(logs) if logs else 0.0
