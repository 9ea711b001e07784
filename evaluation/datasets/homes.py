"""Pure core shared by the dataset converters: a real home's fixture use as 5-minute slots.

A converter maps its sensors to water (litres) and gas (m³) at the times they fired; what no
carebed device measures (doors, cupboards, the fridge, motion) is left out. Local clock times
are kept and read in the centre's time zone, so the home's day has its own shape for a detector
that bins time by the centre's clock. The home becomes a :class:`Timeline` (a water meter, and a
gas meter if any gas was mapped, reporting every 5 minutes with a flow rate), so
`carebed replay` and the evaluation's truncations read it the same way as a simulated home.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import MutableSequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from simulators.residents import SLOT, Away, Profile, Timeline

ONE_FLUSH_L = 6.0
UNKNOWN = Profile("real home (habits unknown)", wake=7.0, sleep=22.0, meals=(), nap=None, steps=(0, 0))


@dataclass
class RealHome:
    """Fixture use of one real home, as (local start, litres or m³, minutes over which it ran)."""

    home_id: str
    water: list[tuple[datetime, float, float]] = field(default_factory=list)
    gas: list[tuple[datetime, float, float]] = field(default_factory=list)
    away: list[tuple[datetime, datetime]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None

    def seen(self, ts: datetime) -> None:
        """Any sensor event, even an unmapped one, extends the span the data covers."""
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)

    def timeline(self, tz: tzinfo, declare_away_over: timedelta = timedelta(hours=12)) -> Timeline:
        """The home from the local midnight of its first event to the end of the day of its last."""
        if self.first is None or self.last is None:
            raise ValueError(f"{self.home_id}: no sensor events")
        start = self.first.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=tz)
        days = math.ceil((self.last.replace(tzinfo=tz) - start) / timedelta(days=1))
        t = Timeline(self.home_id, UNKNOWN, start.astimezone(UTC), max(days, 1))
        for events, values in ((self.water, t.water_l), (self.gas, t.gas_m3)):
            for local, amount, minutes in events:
                _spread(t, values, local.replace(tzinfo=tz), amount, minutes)
        for leave, back in self.away:
            if back - leave >= declare_away_over:
                leave_utc, back_utc = leave.replace(tzinfo=tz).astimezone(UTC), back.replace(tzinfo=tz).astimezone(UTC)
                t.away.append(Away(leave_utc, back_utc, declared=True))
        return t


def _spread(t: Timeline, values: MutableSequence[float], start: datetime, amount: float, minutes: float) -> None:
    """Share ``amount`` over the 5-minute slots the use ran through, in proportion to the time in each."""
    end = start + timedelta(minutes=max(minutes, 1 / 60))
    total = (end - start).total_seconds()
    slot = t.slot_of(start)
    while 0 <= slot < t.slots and t.at(slot) < end:
        overlap = (min(end, t.at(slot) + SLOT) - max(start, t.at(slot))).total_seconds()
        values[slot] += amount * overlap / total
        slot += 1
