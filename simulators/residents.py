"""Pure core of the simulated residents: a home's days as 5-minute slots of steps, water and gas.

A :class:`Timeline` is drawn from a resident profile and a seed: day-to-day variation,
weekends, visitors, days away (declared to the centre or not), device faults, and injected
incidents with their ground truth. Everything is a function of (profile, seed), so the same
seed gives the same months. The live simulator and the evaluation harness both read it.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from carebed.schemas import DeviceKind, Reading
from carebed.topics import DeviceChannel

SLOT = timedelta(minutes=5)
SLOTS_PER_DAY = 288
SLOTS_PER_HOUR = 12


class IncidentType(StrEnum):
    COLLAPSE_DAY = "collapse_day"
    COLLAPSE_NIGHT = "collapse_night"
    TAP_LEFT_ON = "tap_left_on"
    STOVE_LEFT_ON = "stove_left_on"
    NIGHT_WANDERING = "night_wandering"
    ILLNESS = "illness"


class Fault(StrEnum):
    WEARABLE_FLAT_BATTERY = "wearable_flat_battery"
    WATER_METER_OFFLINE = "water_meter_offline"
    GAS_SENSOR_OFFLINE = "gas_sensor_offline"


@dataclass(frozen=True, slots=True)
class Profile:
    """A kind of resident: usual hours (local, may pass 24), meals as (hour, chance of cooking, minutes), nap."""

    name: str
    wake: float
    sleep: float
    meals: tuple[tuple[float, float, float], ...]
    nap: tuple[float, float, float] | None
    steps: tuple[int, int]


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "early_riser", 5.6, 21.2, ((6.3, 0.9, 20), (11.4, 0.8, 35), (17.2, 0.8, 30)), (13.0, 0.5, 60), (60, 300)
        ),
        Profile(
            "night_owl", 8.6, 24.6, ((9.3, 0.6, 15), (12.6, 0.7, 30), (18.6, 0.8, 35), (22.6, 0.2, 15)), None, (40, 250)
        ),
        Profile(
            "cooks_twice", 6.6, 22.0, ((7.0, 0.3, 10), (11.3, 0.95, 45), (17.4, 0.95, 45)), (13.5, 0.6, 45), (50, 280)
        ),
        Profile(
            "rarely_cooks", 7.0, 22.4, ((7.5, 0.1, 10), (12.0, 0.2, 20), (18.0, 0.25, 20)), (14.0, 0.4, 70), (30, 200)
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Illness:
    """A gradual decline: activity falls by ``drop`` over ``ramp_days``, stays low ``low_days``, recovers in two."""

    drop: float
    ramp_days: int
    low_days: int

    @property
    def days(self) -> int:
        """The incident's window: the decline and the low days (recovery is not the incident)."""
        return self.ramp_days + self.low_days

    def factors(self) -> tuple[float, ...]:
        low = 1 - self.drop
        ramp = tuple(1 - self.drop * (k + 1) / self.ramp_days for k in range(self.ramp_days))
        return ramp + (low,) * self.low_days + (low + self.drop / 3, low + 2 * self.drop / 3)


_LEGACY_ILLNESS = tuple(1 - 0.65 * min(1.0, (k + 1) / 6) if k < 9 else 0.35 + 0.2 * (k - 8) for k in range(12))


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """One injected incident; ``normal_max_min`` is the home's longest normal flow, for the flow incidents."""

    home_id: str
    incident: IncidentType
    onset: datetime
    end: datetime
    normal_max_min: float | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "home_id": self.home_id,
            "incident": self.incident.value,
            "onset": self.onset.isoformat(),
            "end": self.end.isoformat(),
        }
        if self.normal_max_min is not None:
            record["normal_max_min"] = self.normal_max_min
        return record


@dataclass(frozen=True, slots=True)
class Away:
    """A period the resident is out; declared ones reach the detector as away feedback."""

    start: datetime
    end: datetime
    declared: bool


@dataclass
class Timeline:
    """Per-slot activity of one home; slot i covers [start + i·5 min, start + (i+1)·5 min)."""

    home_id: str
    profile: Profile
    start: datetime
    days: int
    steps: array[int] = field(init=False)
    water_l: array[float] = field(init=False)
    gas_m3: array[float] = field(init=False)
    worn: bytearray = field(init=False)
    online: dict[str, bytearray] = field(init=False)
    away: list[Away] = field(default_factory=list)
    incidents: list[GroundTruth] = field(default_factory=list)
    faults: list[tuple[Fault, datetime, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.days * SLOTS_PER_DAY
        self.steps = array("H", bytes(2 * n))
        self.water_l = array("f", bytes(4 * n))
        self.gas_m3 = array("f", bytes(4 * n))
        self.worn = bytearray(b"\x01" * n)
        self.online = {name: bytearray(b"\x01" * n) for name in ("wearable", "water_meter", "gas_sensor")}

    @property
    def slots(self) -> int:
        return self.days * SLOTS_PER_DAY

    def at(self, slot: int) -> datetime:
        return self.start + slot * SLOT

    def slot_of(self, ts: datetime) -> int:
        return int((ts - self.start) / SLOT)


def _longest_run(values: array[float], limit: int) -> int:
    best = run = 0
    for i in range(limit):
        run = run + 1 if values[i] > 0 else 0
        best = max(best, run)
    return best


class _Builder:
    """Draws one home's months; kept private so the timeline stays a plain record."""

    def __init__(self, timeline: Timeline, rng: random.Random, tz: tzinfo) -> None:
        self.t = timeline
        self.rng = rng
        self.tz = tz
        self.factor = [1.0] * timeline.days
        self.blocked: set[int] = set()
        self.takes_watch = rng.random() < 0.7
        self.removes_watch_at_night = rng.random() < 0.3

    def set_water(self, slot: int, litres: float) -> None:
        if 0 <= slot < self.t.slots:
            self.t.water_l[slot] += litres

    def set_gas(self, slot: int, m3: float) -> None:
        if 0 <= slot < self.t.slots:
            self.t.gas_m3[slot] += m3

    def set_steps(self, slot: int, steps: int) -> None:
        if 0 <= slot < self.t.slots:
            self.t.steps[slot] = min(65535, self.t.steps[slot] + steps)

    def cook(self, slot: int, minutes: float) -> None:
        flow = self.rng.uniform(0.3, 0.5) * 5 / 60
        for s in range(slot, slot + max(1, round(minutes / 5))):
            self.set_gas(s, flow)
            if self.rng.random() < 0.6:
                self.set_steps(s, self.rng.randint(20, 80))
        self.set_water(slot - 1, self.rng.uniform(3, 6))
        for s in range(slot + round(minutes / 5) + 4, slot + round(minutes / 5) + 4 + self.rng.randint(1, 2)):
            self.set_water(s, self.rng.uniform(3, 6))

    def day(self, d: int) -> None:
        rng, p, f = self.rng, self.t.profile, self.factor[d]
        base = d * SLOTS_PER_DAY
        local = self.t.at(base).astimezone(self.tz)
        weekend = local.weekday() >= 5
        wake_h = p.wake + rng.gauss(0, 0.3) + (rng.uniform(0, 0.75) if weekend else 0) + (1 - f) * 1.5
        sleep_h = p.sleep + rng.gauss(0, 0.35)
        wake, sleep = base + round(wake_h * SLOTS_PER_HOUR), base + round(sleep_h * SLOTS_PER_HOUR)
        still: set[int] = set()
        if p.nap and rng.random() < p.nap[1] / f:
            nap = base + round((p.nap[0] + rng.gauss(0, 0.3)) * SLOTS_PER_HOUR)
            still.update(range(nap, nap + round(rng.gauss(p.nap[2], 10) / 5)))
        tv = sleep - rng.randint(18, 36)
        still.update(range(tv, tv + rng.randint(4, 9)))
        slot = wake
        while slot < sleep:
            active = rng.randint(1, 4) if rng.random() < f else 1
            for s in range(slot, min(slot + active, sleep)):
                if s not in still:
                    self.set_steps(s, int(rng.randint(*p.steps) * f))
            slot += active
            slot += max(1, round(rng.lognormvariate(math.log(1.8 / f), 0.5)))
        for s in range(wake, wake + rng.randint(2, 3)):
            self.set_water(s, rng.uniform(4, 6))
            self.set_steps(s, rng.randint(20, 60))
        for hour, chance, minutes in p.meals:
            if rng.random() < chance * f:
                start = base + round((hour + rng.gauss(0, 0.25)) * SLOTS_PER_HOUR)
                self.cook(start, max(5.0, rng.gauss(minutes, minutes * 0.2)))
        for litres in [6.0] * self._poisson(6 * f) + [rng.uniform(1, 4) for _ in range(self._poisson(3 * f))]:
            s = rng.randint(wake + 3, max(wake + 4, sleep - 3))
            self.set_water(s, litres)
            self.set_steps(s, rng.randint(10, 40))
        for s in range(sleep - 2, sleep):
            self.set_water(s, rng.uniform(3, 6))
        if rng.random() < 0.45:
            shower = sleep - rng.randint(12, 24)
            for s in range(shower, shower + rng.randint(2, 5)):
                self.set_water(s, rng.uniform(6, 9))
        if rng.random() < 0.12:
            visit = base + rng.randint(14 * SLOTS_PER_HOUR, 16 * SLOTS_PER_HOUR)
            for _ in range(self._poisson(4)):
                self.set_water(visit + rng.randint(0, 36), rng.uniform(2, 8))
            if rng.random() < 0.5:
                self.cook(visit + rng.randint(0, 24), rng.uniform(20, 50))
        next_wake = base + SLOTS_PER_DAY + round(p.wake * SLOTS_PER_HOUR)
        for _ in range(self._poisson(1.0)):
            s = rng.randint(sleep + 6, max(sleep + 7, next_wake - 6))
            self.set_steps(s, rng.randint(15, 60))
            self.set_water(s, 6.0)
        if rng.random() < 0.05:
            s = rng.randint(sleep + 6, max(sleep + 7, next_wake - 12))
            for k in range(rng.randint(1, 3)):
                self.set_steps(s + k, rng.randint(20, 80))
            self.set_water(s + 1, 3.0)
        charge = base + rng.randint(19 * SLOTS_PER_HOUR, 20 * SLOTS_PER_HOUR)
        for s in range(charge, min(self.t.slots, charge + rng.randint(9, 15))):
            self.t.worn[s] = 0
        if self.removes_watch_at_night:
            for s in range(max(0, sleep), min(self.t.slots, next_wake)):
                self.t.worn[s] = 0

    def _poisson(self, lam: float) -> int:
        limit, k, prod = math.exp(-lam), 0, self.rng.random()
        while prod > limit:
            k += 1
            prod *= self.rng.random()
        return k

    def clear(self, first: int, last: int, keep_steps: bool = False) -> None:
        for s in range(max(0, first), min(self.t.slots, last)):
            if not keep_steps:
                self.t.steps[s] = 0
            self.t.water_l[s] = 0.0
            self.t.gas_m3[s] = 0.0


def _free_day(rng: random.Random, first: int, last: int, blocked: set[int], span: int) -> int | None:
    for _ in range(50):
        if last <= first:
            return None
        d = rng.randint(first, last - 1)
        if all(x not in blocked for x in range(d - 2, d + span + 2)):
            blocked.update(range(d - 2, d + span + 2))
            return d
    return None


def build_timeline(
    home_id: str,
    start: datetime,
    days: int,
    seed: int,
    tz: tzinfo,
    incidents: tuple[IncidentType, ...] = (),
    incidents_from_day: int = 10,
    profile: str | None = None,
    trips: bool = True,
    faults: bool = True,
    resident: Profile | None = None,
    illness: Illness | None = None,
) -> Timeline:
    """Draw a home's ``days`` from local midnight of ``start``, with the given incidents on free days.

    ``resident`` replaces the named profiles (the evaluation's populations vary them per home);
    ``illness`` replaces the default decline (to 35 % over six days, then recovery).
    """
    rng = random.Random(seed)
    chosen = resident or (PROFILES[profile] if profile else rng.choice(list(PROFILES.values())))
    local = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    t = Timeline(home_id, chosen, local.astimezone(UTC), days)
    b = _Builder(t, rng, tz)
    blocked: set[int] = set()
    plans: list[tuple[IncidentType, int]] = []
    for incident in incidents:
        sick = illness.factors() if illness else _LEGACY_ILLNESS
        span = len(sick) if incident is IncidentType.ILLNESS else 5 if incident.value.startswith("collapse") else 1
        d = _free_day(rng, min(incidents_from_day, days // 2), days - span, blocked, span)
        if d is not None:
            plans.append((incident, d))
            if incident is IncidentType.ILLNESS:
                for k, factor in enumerate(sick):
                    if d + k < days:
                        b.factor[d + k] = factor
    away: list[tuple[int, int]] = []
    d = 2
    while trips and d < days:
        d += max(1, round(rng.expovariate(1 / 40)))
        length = rng.randint(1, 3)
        if d + length < days and all(x not in blocked for x in range(d, d + length + 1)):
            blocked.update(range(d, d + length + 1))
            away.append((d, length))
    for day in range(days):
        b.day(day)
    water_normal = _longest_run(t.water_l, t.slots) * 5
    gas_normal = _longest_run(t.gas_m3, t.slots) * 5
    for day, length in away:
        leave = day * SLOTS_PER_DAY + rng.randint(9 * SLOTS_PER_HOUR, 10 * SLOTS_PER_HOUR)
        back = (day + length) * SLOTS_PER_DAY + rng.randint(16 * SLOTS_PER_HOUR, 18 * SLOTS_PER_HOUR)
        b.clear(leave, back, keep_steps=b.takes_watch)
        t.away.append(Away(t.at(leave), t.at(back), declared=rng.random() < 0.6))
    for incident, day in plans:
        _inject(b, incident, day, water_normal, gas_normal, illness.days if illness else 12)
    if faults:
        _faults(b)
    t.incidents.sort(key=lambda g: g.onset)
    t.away.sort(key=lambda a: a.start)
    return t


def _inject(
    b: _Builder, incident: IncidentType, day: int, water_normal: float, gas_normal: float, illness_days: int
) -> None:
    t, rng, p = b.t, b.rng, b.t.profile
    base = day * SLOTS_PER_DAY
    wake, sleep = base + round(p.wake * SLOTS_PER_HOUR), base + round(p.sleep * SLOTS_PER_HOUR)
    normal: float | None = None
    if incident is IncidentType.COLLAPSE_DAY:
        onset = rng.randint(max(wake + 12, base + 8 * SLOTS_PER_HOUR), min(sleep - 12, base + 20 * SLOTS_PER_HOUR))
        end = onset + SLOTS_PER_DAY
    elif incident is IncidentType.COLLAPSE_NIGHT:
        onset = rng.randint(sleep + 12, sleep + 48)
        end = onset + SLOTS_PER_DAY
    elif incident is IncidentType.TAP_LEFT_ON:
        onset = rng.randint(wake + 12, sleep - 36)
        end = onset + rng.randint(36, 72)
        for s in range(onset, end):
            b.set_water(s, 30.0)
        normal = water_normal
    elif incident is IncidentType.STOVE_LEFT_ON:
        meal = p.meals[-1 if rng.random() < 0.5 else 1][0]
        onset = base + round(meal * SLOTS_PER_HOUR)
        end = onset + rng.randint(36, 72)
        flow = rng.uniform(0.3, 0.5) * 5 / 60
        for s in range(onset, end):
            t.gas_m3[s] = flow
        normal = gas_normal
    elif incident is IncidentType.NIGHT_WANDERING:
        onset = rng.randint(sleep + 24, sleep + 48)
        end = onset + rng.randint(9, 24)
        for s in range(onset, end):
            if rng.random() < 0.85:
                b.set_steps(s, rng.randint(30, 120))
        b.set_water(onset + 3, 4.0)
    else:
        onset, end = base, base + illness_days * SLOTS_PER_DAY
    if incident in (IncidentType.COLLAPSE_DAY, IncidentType.COLLAPSE_NIGHT):
        b.clear(onset, end)
        hospital = end + 3 * SLOTS_PER_DAY
        b.clear(end, hospital)
        t.away.append(Away(t.at(end), t.at(min(hospital, t.slots)), declared=True))
    t.incidents.append(GroundTruth(t.home_id, incident, t.at(onset), t.at(end), normal))


def _faults(b: _Builder) -> None:
    t, rng = b.t, b.rng
    for fault, device, chance, hours in (
        (Fault.WEARABLE_FLAT_BATTERY, "wearable", 0.5, (8, 30)),
        (Fault.WATER_METER_OFFLINE, "water_meter", 0.3, (2, 12)),
        (Fault.GAS_SENSOR_OFFLINE, "gas_sensor", 0.2, (2, 12)),
    ):
        if rng.random() < chance:
            first = rng.randint(0, t.slots - 1)
            last = min(t.slots, first + rng.randint(*hours) * SLOTS_PER_HOUR)
            for s in range(first, last):
                t.online[device][s] = 0
            t.faults.append((fault, t.at(first), t.at(last)))


def device_id(home_id: str, kind: DeviceKind) -> str:
    """The id :func:`simulators.homes.build_registry` gives a home's device of this kind."""
    return f"{home_id}-{kind.value.replace('_', '-')}"


def telemetry(home_id: str, kind: DeviceKind, ts: datetime, received_at: datetime, **values: Any) -> Reading:
    """A telemetry reading of the home's device of this kind, built without validation (valid by construction)."""
    return Reading.model_construct(
        home_id=home_id,
        device_id=device_id(home_id, kind),
        device_kind=kind,
        channel=DeviceChannel.TELEMETRY,
        ts=ts,
        received_at=received_at,
        **values,
    )


def readings(t: Timeline) -> Iterator[Reading]:
    """Normalised readings, as the gateway would hand them on, every 5 minutes from each online device.

    Built without validation, for speed: the values come from the simulator and are valid by construction.
    """

    def make(kind: DeviceKind, ts: datetime, **values: Any) -> Reading:
        return telemetry(t.home_id, kind, ts, ts, **values)

    rng = random.Random(t.home_id)
    water, gas, steps = rng.uniform(10_000, 90_000), rng.uniform(100, 900), 0
    wearable_on, water_on, gas_on = t.online["wearable"], t.online["water_meter"], t.online["gas_sensor"]
    for i in range(t.slots):
        ts = t.start + (i + 1) * SLOT
        worn = bool(t.worn[i])
        if worn:
            steps += t.steps[i]
        litres, m3 = t.water_l[i], t.gas_m3[i]
        water += litres
        gas += m3
        if wearable_on[i]:
            yield make(DeviceKind.WEARABLE, ts, steps=steps, worn=worn, heart_rate_bpm=70.0 if worn else None)
        if water_on[i]:
            yield make(
                DeviceKind.WATER_METER,
                ts,
                water_volume_l=round(water, 2),
                water_flow_l_min=round(litres / 5, 2),
                leak=False,
            )
        if gas_on[i]:
            yield make(
                DeviceKind.GAS_SENSOR,
                ts,
                gas_volume_m3=round(gas, 3),
                gas_flow_m3_h=round(m3 * 12, 3),
                ch4_lel_pct=0.5,
                co_ppm=2.0,
            )
