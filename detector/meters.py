"""Pure core of what a utility meter says about the resident: use, continuous flow, a trickle, a schedule.

Meters differ. Some report a flow rate every few minutes; NB-IoT water and gas meters report
only a cumulative total every 15 or 60 minutes. A reading is judged over the interval since
the previous one: what was used in it (a volume delta is use somewhere in the interval, not
at its end), whether it flowed without a break (a reported rate above the threshold; on a
coarse meter also an average rate over the whole interval that only continuous flow reaches), and
how much of it was a steady trickle (a cistern leak of 0.03-0.3 L/min, a pilot flame), which
is neither the resident nor a tap left on.

The trickle is the lowest rate over the last 12-24 hours (two 12-hour blocks, so a night is
always among them); it is subtracted from every interval, and a trickle that holds for a day
is a possible leak, a finding for a technician. Flows that start at the same time of day on
most days (an irrigation timer, a purifier's flush) are learned as a schedule; while one runs
no longer than usual it is neither use nor a long flow.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from carebed.schemas import DeviceKind

TICK_MIN = 5.0
FLOW_BINS = 48
START_BINS = 96  # quarter hours: a timer starts to the minute, a person's habits spread over the hour
COARSE_MIN = 7.5  # a gap longer than this is a coarse interval: judged by its average rate
TRICKLE_BLOCK = timedelta(hours=12)
RATE_GAP_MAX = timedelta(hours=2)  # a longer gap is an outage; its average rate says nothing about a trickle
OUTAGE_GAPS = 3.0
SCHEDULE_SHARE = 0.8  # a start in the same half hour on at least 80 % of days is a timer, not a habit
SCHEDULE_MIN_DAYS = 4.0
SCHEDULE_MIN_FLOW = 15.0  # shorter flows never reach a long-flow alert, so they need no schedule
LEAK_AFTER = timedelta(hours=24)
UPLOAD_MAX = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class MeterUnits:
    """Thresholds in the meter's own units (litres or m³; rates per minute)."""

    use: float  # least volume above the trickle in one interval that is someone using it
    steady_use: float  # ... unless its rate is the previous interval's (a trickle not yet learned): then this much
    steady: float  # rates closer than this (per minute) to the previous interval's are steady
    running: float  # least reported flow above the trickle that is flowing
    coarse_running: float  # least average rate over a coarse interval that only continuous flow reaches
    leak: float  # a trickle at least this fast for a day is a possible leak (0: not judged)
    flow_per_min: float  # reported flow times this is volume per minute
    schedules: bool  # appliances on timers are learned (water: irrigation, purifiers, washing machines)


UNITS = {
    DeviceKind.WATER_METER: MeterUnits(
        use=0.5,
        steady_use=1.6,
        steady=0.05,
        running=0.5,
        coarse_running=1.0,
        leak=0.02,
        flow_per_min=1.0,
        schedules=True,
    ),
    DeviceKind.GAS_SENSOR: MeterUnits(
        use=0.002,
        steady_use=0.002,
        steady=0.0,
        running=0.02 / 60,
        coarse_running=0.1 / 60,
        leak=0.0,
        flow_per_min=1 / 60,
        schedules=False,
    ),
}


@dataclass(frozen=True, slots=True)
class Interval:
    """What one reading says about the interval since the previous one."""

    used: float  # the whole delta, trickle included (what the fixed "< 10 L in 12 h" rule counts)
    excess: float  # the delta above the trickle
    use: bool  # someone used it: enough above the trickle, and not just the same rate as before
    running: bool


def learn_upload(
    upload_s: float | None, interval_s: float | None, last_ts: datetime, ts: datetime, clock: datetime
) -> float | None:
    """A device that uploads its buffer in late batches looks silent between them: how long, as a running mean.

    Learned from the first reading of a batch, which arrives late; the first reading after an outage
    arrives on time and teaches nothing.
    """
    if interval_s is None:
        return upload_s
    seen = (clock - last_ts).total_seconds()
    if (clock - ts).total_seconds() <= 2 * interval_s or not 2 * interval_s < seen <= UPLOAD_MAX.total_seconds():
        return upload_s
    return seen if upload_s is None else upload_s + 0.2 * (seen - upload_s)


def _quarter(ts: datetime, tz: tzinfo) -> int:
    local = ts.astimezone(tz)
    return local.hour * 4 + local.minute // 15


def _floats(n: int) -> array[float]:
    return array("f", bytes(4 * n))


@dataclass(slots=True)
class Meter:
    """One meter of a home: its interval, trickle, flow episodes and learned schedule (5-minute bins)."""

    kind: DeviceKind
    device_id: str | None = None
    volume: float | None = None
    ts: datetime | None = None
    interval_s: float | None = None
    upload_s: float | None = None  # how long it looks silent between late batches, if it uploads in batches
    heard_at: datetime | None = None  # the clock when its last reading arrived
    block_start: datetime | None = None
    block_min: float = 0.0
    prev_block_min: float | None = None
    prev_rate: float | None = None
    leak_since: datetime | None = None
    leak_alerted: bool = False
    day: array[float] = field(default_factory=lambda: _floats(FLOW_BINS))
    night: array[float] = field(default_factory=lambda: _floats(FLOW_BINS))
    starts: array[float] = field(default_factory=lambda: _floats(START_BINS))
    start_minutes: array[float] = field(default_factory=lambda: _floats(START_BINS))
    days: float = 0.0
    episodes: float = 0.0
    start: datetime | None = None
    start_night: bool = False
    scheduled_min: float | None = None
    last_flowing: datetime | None = None
    prev_ts: datetime | None = None
    alerted: bool = False

    @property
    def units(self) -> MeterUnits:
        return UNITS[self.kind]

    def trickle(self) -> float:
        """The steady rate under all use lately (per minute); 0 until a first 12-hour block has passed."""
        if self.prev_block_min is None:
            return 0.0
        return min(self.block_min, self.prev_block_min)

    def read(self, ts: datetime, volume: float | None, flow: float | None) -> Interval:
        """Judge the interval ending at this reading. A cumulative total that goes down is re-based, never use."""
        units = self.units
        gap = ts - self.ts if self.ts is not None else None
        gap_min = gap.total_seconds() / 60 if gap is not None and gap > timedelta(0) else None
        if gap_min is not None:
            if self.interval_s is None:
                self.interval_s = gap_min * 60
            elif gap_min * 60 <= OUTAGE_GAPS * self.interval_s:
                self.interval_s += 0.1 * (gap_min * 60 - self.interval_s)
        used = 0.0
        if volume is not None:
            if self.volume is not None and volume >= self.volume:
                used = volume - self.volume
            self.volume = volume
        if gap_min is not None or self.ts is None:
            self.ts = ts
        trickle = self.trickle()
        excess = max(0.0, used - trickle * gap_min) if gap_min is not None else used
        steady = False
        if gap_min is not None and gap is not None and gap <= RATE_GAP_MAX:
            rate = used / gap_min if volume is not None else (flow or 0.0) * units.flow_per_min
            steady = self.prev_rate is not None and abs(rate - self.prev_rate) < units.steady
            self.prev_rate = rate
            self._learn_trickle(ts, rate)
        use = excess > (units.steady_use if steady else units.use)
        coarse = gap_min is not None and gap_min > COARSE_MIN
        if gap_min is None:
            running = flow is not None and flow * units.flow_per_min - trickle >= units.running
        else:
            running = excess / gap_min >= (units.coarse_running if coarse else units.running)
        if flow is not None and (running or not coarse):
            # A reported flow is the rate at the reading: over a coarse interval it says nothing of the rest of it.
            running = flow * units.flow_per_min - trickle >= units.running
        return Interval(used=used, excess=excess, use=use, running=running)

    def _learn_trickle(self, ts: datetime, rate: float) -> None:
        if self.block_start is None or ts - self.block_start >= TRICKLE_BLOCK:
            if self.block_start is not None:
                self.prev_block_min = self.block_min
            self.block_start, self.block_min = ts, rate
        else:
            self.block_min = min(self.block_min, rate)

    def leaking(self, ts: datetime) -> bool:
        """A trickle of at least the leak rate has held for a day: true once per leak."""
        leak = self.units.leak
        if not leak or self.trickle() < leak:
            if self.trickle() < leak / 2:
                self.leak_since, self.leak_alerted = None, False
            return False
        if self.leak_since is None:
            self.leak_since = ts
        if self.leak_alerted or ts - self.leak_since < LEAK_AFTER:
            return False
        self.leak_alerted = True
        return True

    def arrived(self, ts: datetime, clock: datetime) -> None:
        """A reading of device time ``ts`` arrived at this clock: learn the upload period from a batch's first."""
        first_of_batch = self.heard_at is None or clock > self.heard_at
        self.heard_at = clock
        if first_of_batch and self.ts is not None:
            self.upload_s = learn_upload(self.upload_s, self.interval_s, self.ts, ts, clock)

    def stale_after(self, floor: timedelta) -> timedelta:
        """How long after its last reading this meter still counts as reporting: its own interval and a half,
        or its upload period and a quarter."""
        if self.interval_s is None:
            return floor
        stale = max(floor, timedelta(seconds=1.5 * self.interval_s) + timedelta(minutes=TICK_MIN))
        return stale if self.upload_s is None else max(stale, timedelta(seconds=1.25 * self.upload_s))

    def schedule(self, start: datetime, tz: tzinfo) -> float | None:
        """The usual length of a water flow that starts at this quarter hour on most days: an appliance on a timer.

        A resident's shower or cooking at their usual hour spreads over more than half an hour from day to day
        and stays the resident's; gas is never scheduled.
        """
        if not self.units.schedules or self.days < SCHEDULE_MIN_DAYS:
            return None
        b = _quarter(start, tz)
        pair = max(((b - 1) % START_BINS, b), (b, (b + 1) % START_BINS), key=lambda p: sum(self.starts[i] for i in p))
        starts = sum(self.starts[i] for i in pair)
        if starts < SCHEDULE_SHARE * self.days:
            return None
        return sum(self.start_minutes[i] for i in pair) / starts

    def learn_episode(self, start: datetime, tz: tzinfo, minutes: float) -> None:
        """A long enough flow counts towards its start time's schedule; a flow of the schedule is not normal use."""
        if minutes >= SCHEDULE_MIN_FLOW:
            b = _quarter(start, tz)
            self.starts[b] += 1
            self.start_minutes[b] += minutes
        if self.scheduled_min is not None:
            return
        hist = self.night if self.start_night else self.day
        hist[min(FLOW_BINS - 1, round(minutes / TICK_MIN))] += 1
        self.episodes += 1

    def new_day(self, decay: float) -> None:
        """A fully observed day: forget a little of everything learned."""
        for arr in (self.day, self.night, self.starts, self.start_minutes):
            for i in range(len(arr)):
                arr[i] *= decay
        self.episodes *= decay
        self.days = self.days * decay + 1


FLOW_PRIOR = {
    DeviceKind.WATER_METER: [1.0 if 1 <= i <= 3 else 0.3 if i <= 6 else 0.0 for i in range(FLOW_BINS)],
    DeviceKind.GAS_SENSOR: [1.0 if 3 <= i <= 9 else 0.3 if i <= 12 else 0.0 for i in range(FLOW_BINS)],
}


def flow_tail(counts: Sequence[float], prior: Sequence[float], prior_weight: float, minutes: float) -> float:
    """P(a normal flow lasts >= minutes): empirical in the bulk, an exponential tail beyond it.

    The tail starts where about ten of the home's flows remain (at most the top 10 %, at least
    the top 1 %), and its scale is their mean excess: peaks over a threshold with shape zero.
    """
    prior_total = sum(prior)
    mass = [c + prior_weight * p / prior_total for c, p in zip(counts, prior, strict=True)]
    n = sum(mass)
    survival = [0.0] * (FLOW_BINS + 1)
    for i in range(FLOW_BINS - 1, -1, -1):
        survival[i] = survival[i + 1] + mass[i] / n
    share = min(0.1, max(0.005, 5 / n))
    start = max(i for i in range(FLOW_BINS) if survival[i] >= share)
    beyond = [(j - start, mass[j]) for j in range(start + 1, FLOW_BINS) if mass[j] > 0]
    weight = sum(m for _, m in beyond)
    tau = max(TICK_MIN, TICK_MIN * sum(d * m for d, m in beyond) / weight) if weight else TICK_MIN
    index = minutes / TICK_MIN
    if index <= start:
        return survival[min(FLOW_BINS - 1, max(0, int(index)))]
    return survival[start] * math.exp(-(minutes - start * TICK_MIN) / tau)
