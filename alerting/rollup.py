"""Pure core of the console's activity chart: readings folded into 15-minute buckets per home.

Meters and step counters report cumulative totals; a bucket holds the difference between
consecutive readings of a device. A total that goes down is a reset (a new meter, a step
counter at midnight): the new total itself is the usage since the reset. A reading older than
the device's last one is counted as "seen" but adds no usage, so a redelivery cannot double it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from carebed.schemas import Reading

BUCKET = timedelta(minutes=15)
_V = TypeVar("_V", int, float)


def bucket_start(ts: datetime) -> datetime:
    """The start of the 15-minute bucket holding ``ts`` (aware, UTC)."""
    return ts.replace(minute=ts.minute - ts.minute % 15, second=0, microsecond=0)


@dataclass(slots=True)
class Usage:
    water_l: float = 0.0
    gas_m3: float = 0.0
    steps: int = 0
    readings: int = 0


class Seen(NamedTuple):
    """A device's latest sighting, kept until the next flush."""

    home_id: str
    last_seen: datetime
    battery_pct: float | None
    online: bool


# A device's last cumulative totals (ts, water_l, gas_m3, steps), one per device for good: 300k at
# 100k homes. A plain tuple of plain values, which the garbage collector stops tracking (it does
# not for a NamedTuple or a dataclass instance): a full collection of the rollup's state took
# 281 ms with dataclasses, 48-62 with NamedTuples, 0 with tuples (`python -m benchmarks.rollup`).
_Totals = tuple[datetime, float | None, float | None, int | None]


def _newer(old: _V | None, new: _V | None) -> _V | None:
    return new if new is not None else old


def _delta(previous: float | None, current: float | None) -> float:
    if previous is None or current is None:
        return 0.0
    return current - previous if current >= previous else current


@dataclass
class ActivityRollup:
    """Accumulates usage and device sightings until :meth:`drain` hands them to the writer."""

    buckets: dict[tuple[str, datetime], Usage] = field(default_factory=dict)
    seen: dict[str, Seen] = field(default_factory=dict)
    _totals: dict[str, _Totals] = field(default_factory=dict)

    def add(self, reading: Reading) -> None:
        self._see(reading)
        usage = self.buckets.setdefault((reading.home_id, bucket_start(reading.ts)), Usage())
        usage.readings += 1
        previous = self._totals.get(reading.device_id)
        if previous is None:
            self._totals[reading.device_id] = (reading.ts, reading.water_volume_l, reading.gas_volume_m3, reading.steps)
            return
        ts, water_l, gas_m3, steps = previous
        if reading.ts < ts:
            return
        usage.water_l += _delta(water_l, reading.water_volume_l)
        usage.gas_m3 += _delta(gas_m3, reading.gas_volume_m3)
        usage.steps += int(_delta(steps, reading.steps))
        self._totals[reading.device_id] = (
            reading.ts,
            _newer(water_l, reading.water_volume_l),
            _newer(gas_m3, reading.gas_volume_m3),
            _newer(steps, reading.steps),
        )

    def _see(self, reading: Reading) -> None:
        before = self.seen.get(reading.device_id)
        if before is not None and reading.ts < before.last_seen:
            return
        battery = _newer(before.battery_pct if before else None, reading.battery_pct)
        online = reading.online if reading.online is not None else True
        self.seen[reading.device_id] = Seen(reading.home_id, reading.ts, battery, online)

    def drain(self) -> tuple[dict[tuple[str, datetime], Usage], dict[str, Seen]]:
        """Take what accumulated since the last drain; the cumulative totals stay for the next deltas."""
        buckets, seen = self.buckets, self.seen
        self.buckets, self.seen = {}, {}
        return buckets, seen
