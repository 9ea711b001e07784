"""Pure core of the evaluation's populations: named classes of deployment, each drawn widely per home.

A population fixes what kind of homes it holds (which devices, how often meters report, whether
they give a flow rate, how watches go silent, household noise, history, late or lost uploads);
every home draws its own values within those bounds, so no detector can fit one fixed value.
``full`` is today's simulator unchanged (`carebed eval`), so the matrix has a row it can be
compared against. Everything is a function of (population, seed).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from carebed.schemas import DeviceKind
from simulators.residents import (
    PROFILES,
    SLOTS_PER_DAY,
    SLOTS_PER_HOUR,
    Fault,
    Illness,
    IncidentType,
    Profile,
    Timeline,
    build_timeline,
)

FAULT_DEVICE = {
    Fault.WEARABLE_FLAT_BATTERY: DeviceKind.WEARABLE,
    Fault.WATER_METER_OFFLINE: DeviceKind.WATER_METER,
    Fault.GAS_SENSOR_OFFLINE: DeviceKind.GAS_SENSOR,
}
FLOWING_L_PER_SLOT = 0.5  # 0.1 L/min, where meters and rules call water "flowing"


@dataclass(frozen=True, slots=True)
class Kit:
    """One home's devices as deployed: what reports, how often, with which fields, and how uploads fail."""

    wearable: bool = True
    gas: bool = True
    interval_min: int = 5
    flow_field: bool = True
    wear_sensor: bool = True
    batch_every_min: int | None = None
    drop_rate: float = 0.0
    phase_slots: int = 0

    def devices(self) -> tuple[DeviceKind, ...]:
        kinds = [DeviceKind.WATER_METER]
        if self.wearable:
            kinds.append(DeviceKind.WEARABLE)
        if self.gas:
            kinds.append(DeviceKind.GAS_SENSOR)
        return tuple(kinds)

    def interval(self, kind: DeviceKind) -> timedelta:
        """How often a device's data reaches the centre: its report interval, or its upload period if it batches."""
        if kind is DeviceKind.WEARABLE:
            return timedelta(minutes=5)
        return timedelta(minutes=max(self.interval_min, self.batch_every_min or 0))


@dataclass(frozen=True, slots=True)
class Outage:
    """A device fault: the device sent nothing although nothing ordinary explains it."""

    kind: DeviceKind
    start: datetime
    end: datetime


@dataclass
class HomeCase:
    """One simulated home as a population deploys it, with its ground truth."""

    timeline: Timeline
    kit: Kit
    traits: dict[str, float | str | bool] = field(default_factory=dict)

    def outages(self) -> list[Outage]:
        kinds = self.kit.devices()
        return [Outage(FAULT_DEVICE[f], a, b) for f, a, b in self.timeline.faults if FAULT_DEVICE[f] in kinds]

    def must_flag(self, outage: Outage) -> bool:
        """An outage longer than max(2 h, 4 of the device's intervals) must raise a device alert."""
        return outage.end - outage.start > max(timedelta(hours=2), 4 * self.kit.interval(outage.kind))


@dataclass(frozen=True, slots=True)
class Population:
    """A class of deployment; each field bounds what a home may draw."""

    name: str
    description: str
    wearable: float = 1.0
    gas: float = 1.0
    intervals: tuple[int, ...] = (5,)
    flow_field: float = 1.0
    watch_habits: bool = False
    household: bool = False
    long_sleepers: float = 0.1
    incidents_from: tuple[int, int] = (10, 10)
    batches_h: tuple[int, int] | None = None
    drops: tuple[float, float] | None = None
    legacy: bool = False


POPULATIONS: dict[str, Population] = {
    p.name: p
    for p in (
        Population(
            "full", "today's full kit (watch, water and gas every 5 min with flow rate): `carebed eval`", legacy=True
        ),
        Population(
            "meters_15min",
            "water and gas meters send cumulative totals only, every 15 min (no flow rate); a watch in half the homes",
            wearable=0.5,
            intervals=(15,),
            flow_field=0.0,
        ),
        Population(
            "meters_60min",
            "cumulative totals only every 60 min, no wearable; gas in 70 % of homes",
            wearable=0.0,
            gas=0.7,
            intervals=(60,),
            flow_field=0.0,
        ),
        Population(
            "water_only",
            "a water meter and nothing else (5, 15, 30 or 60 min; flow rate in half), a third long sleepers",
            wearable=0.0,
            gas=0.0,
            intervals=(5, 15, 30, 60),
            flow_field=0.5,
            long_sleepers=0.35,
        ),
        Population(
            "watch",
            "full kit whose watch goes silent for ordinary reasons: hub-linked (silent when out), off at night, "
            "silent on the charger, forgotten for half a day, no wear sensor in some",
            watch_habits=True,
        ),
        Population(
            "household",
            "scheduled appliances (irrigation, purifier flush, timed washing machine), cistern leaks of "
            "0.03-0.3 L/min for days, long sleepers, visitors who stay; meters every 5 or 15 min",
            intervals=(5, 15),
            flow_field=0.6,
            household=True,
            long_sleepers=0.35,
        ),
        Population(
            "short_history",
            "incidents from day 3-5; water only in half the homes, a third long sleepers",
            wearable=0.5,
            gas=0.5,
            intervals=(5, 15, 60),
            flow_field=0.5,
            long_sleepers=0.35,
            incidents_from=(3, 5),
        ),
        Population(
            "late_batches",
            "meters read every 15 min but upload their buffer every 1-6 h; a watch in half the homes",
            wearable=0.5,
            intervals=(15,),
            flow_field=0.5,
            batches_h=(1, 6),
        ),
        Population(
            "drops",
            "every device loses 1-8 % of its reports; meters every 5 or 15 min",
            intervals=(5, 15),
            flow_field=0.6,
            drops=(0.01, 0.08),
        ),
    )
}


def _resident(rng: random.Random, long_sleeper: bool) -> Profile:
    """One of the four profiles, moved and stretched per home; a long sleeper sleeps 10-12 h."""
    base = rng.choice(list(PROFILES.values()))
    if long_sleeper:
        sleep = rng.uniform(20.3, 22.0)
        wake = sleep + rng.uniform(10.0, 12.0) - 24
    else:
        shift = rng.uniform(-1.0, 1.0)
        wake, sleep = base.wake + shift, base.sleep + shift + rng.uniform(-0.5, 0.5)
    moved = wake - base.wake
    meals = tuple((hour + moved, chance, minutes) for hour, chance, minutes in base.meals if hour + moved < sleep - 1)
    nap = (base.nap[0] + moved, base.nap[1], base.nap[2]) if base.nap else None
    scale = rng.uniform(0.6, 1.5)
    steps = (max(10, round(base.steps[0] * scale)), max(40, round(base.steps[1] * scale)))
    return replace(base, name=f"{base.name}~", wake=wake, sleep=sleep, meals=meals, nap=nap, steps=steps)


def _kit(p: Population, rng: random.Random) -> Kit:
    interval = rng.choice(p.intervals)
    return Kit(
        wearable=rng.random() < p.wearable,
        gas=rng.random() < p.gas,
        interval_min=interval,
        flow_field=rng.random() < p.flow_field,
        wear_sensor=not p.watch_habits or rng.random() < 0.6,
        batch_every_min=60 * rng.randint(*p.batches_h) if p.batches_h else None,
        drop_rate=rng.uniform(*p.drops) if p.drops else 0.0,
        phase_slots=rng.randrange(interval // 5),
    )


def draw_home(
    p: Population, home_id: str, start: datetime, days: int, seed: int, tz: tzinfo, incidents: tuple[IncidentType, ...]
) -> HomeCase:
    """One home of population ``p``: its resident's months, its kit, and the noise the population brings."""
    if p.legacy:
        return HomeCase(build_timeline(home_id, start, days, seed, tz, incidents), Kit())
    rng = random.Random(seed ^ 0x5EED)
    long_sleeper = rng.random() < p.long_sleepers
    resident = _resident(rng, long_sleeper)
    illness = Illness(drop=rng.uniform(0.4, 0.7), ramp_days=rng.randint(3, 5), low_days=rng.randint(4, 8))
    from_day = rng.randint(*p.incidents_from)
    t = build_timeline(
        home_id, start, days, seed, tz, incidents, incidents_from_day=from_day, resident=resident, illness=illness
    )
    case = HomeCase(t, _kit(p, rng), {"resident": resident.name, "long_sleeper": long_sleeper})
    case.traits["illness_drop"] = round(illness.drop, 2)
    noise = _Noise(case, rng)
    noise.outings()
    noise.wandering_without_watch()
    if p.household:
        noise.appliances()
        noise.visitors()
    noise.normal_flows()
    if p.household:
        noise.cistern_leak()
    if p.watch_habits:
        noise.watch_habits()
    return case


class _Noise:
    """What a real household adds to a simulated one; each method draws its own share of homes."""

    def __init__(self, case: HomeCase, rng: random.Random) -> None:
        self.case, self.t, self.rng = case, case.timeline, rng
        self.busy = bytearray(self.t.slots)
        for g in self.t.incidents:
            self._mark(self.t.slot_of(g.onset) - SLOTS_PER_DAY // 2, self.t.slot_of(g.end) + SLOTS_PER_DAY // 2)
        for a in self.t.away:
            self._mark(self.t.slot_of(a.start), self.t.slot_of(a.end))
        self.out = bytearray(self.t.slots)
        for a in self.t.away:
            _fill(self.out, self.t.slot_of(a.start), self.t.slot_of(a.end), 1)

    def _mark(self, first: int, last: int) -> None:
        _fill(self.busy, first, last, 1)

    def _free(self, first: int, last: int) -> bool:
        return 0 <= first < last <= self.t.slots and not any(self.busy[first:last])

    def _hours(self, day: int, hour: float) -> int:
        return day * SLOTS_PER_DAY + round(hour * SLOTS_PER_HOUR)

    def outings(self) -> None:
        """Shopping, the park, a friend: 1-3 h out on about half the days (water and gas stop, steps go on)."""
        p, rng = self.t.profile, self.rng
        rate = rng.uniform(0.2, 0.8)
        for day in range(self.t.days):
            if rng.random() >= rate:
                continue
            first = self._hours(day, rng.uniform(p.wake + 1.5, max(p.wake + 2, p.sleep - 4.5)))
            last = first + rng.randint(12, 36)
            if not self._free(first, last):
                continue
            for s in range(first, last):
                self.t.water_l[s] = self.t.gas_m3[s] = 0.0
                self.out[s] = 1
        self.case.traits["outings_per_day"] = round(rate, 2)

    def wandering_without_watch(self) -> None:
        """A resident who wanders at night often has the watch off: the walk shows only as taps and a kettle."""
        for g in self.t.incidents:
            if g.incident is not IncidentType.NIGHT_WANDERING or self.rng.random() >= 0.6:
                continue
            first, last = self.t.slot_of(g.onset), self.t.slot_of(g.end)
            for day in range(-1, self.t.days):
                night = range(self._hours(day, self.t.profile.sleep - 0.5), self._hours(day + 1, self.t.profile.wake))
                for s in night:
                    if 0 <= s < self.t.slots:
                        self.t.worn[s] = 0
            for _ in range(self.rng.randint(2, 5)):
                self.t.water_l[self.rng.randrange(first, last)] += self.rng.uniform(1.0, 4.0)
            if self.rng.random() < 0.4:
                for s in range(first + 1, min(last, first + self.rng.randint(3, 5))):
                    self.t.gas_m3[s] += self.rng.uniform(0.3, 0.5) * 5 / 60
            self.case.traits["wanders_without_watch"] = True

    def appliances(self) -> None:
        """Irrigation, a purifier's flush or a washing machine on a timer, running whatever the resident does."""
        rng = self.rng
        if rng.random() >= 0.7:
            return
        kind = rng.choice(("irrigation", "purifier", "washing_machine"))
        self.case.traits["appliance"] = kind
        days = range(self.t.days)
        if kind == "irrigation":
            hour = rng.choice((rng.uniform(4.0, 7.0), rng.uniform(19.0, 23.0)))
            slots, rate = rng.randint(3, 12), rng.uniform(5.0, 15.0)
            every = rng.choice((1, 1, 2))
            for day in days[::every]:
                for s in range(self._hours(day, hour), self._hours(day, hour) + slots):
                    self._add(s, rate * 5)
        elif kind == "purifier":
            every, litres = rng.randint(3, 8), rng.uniform(2.0, 6.0)
            for s in range(rng.randrange(every * SLOTS_PER_HOUR), self.t.slots, every * SLOTS_PER_HOUR):
                self._add(s, litres)
        else:
            hour, every = rng.uniform(0.5, 5.0), rng.randint(2, 4)
            for day in days[rng.randrange(every) :: every]:
                first = self._hours(day, hour)
                for k in range(rng.randint(12, 20)):
                    if k % 3 == 0 or k >= 9:
                        self._add(first + k, rng.uniform(8.0, 15.0))

    def _add(self, slot: int, litres: float) -> None:
        if 0 <= slot < self.t.slots:
            self.t.water_l[slot] += litres

    def visitors(self) -> None:
        """A son or a carer who stays 2-7 days: more water by day and at night, more cooking."""
        rng = self.rng
        if rng.random() >= 0.5:
            return
        stays = 0
        for _ in range(rng.randint(1, 2)):
            day, length = rng.randrange(self.t.days), rng.randint(2, 7)
            first, last = self._hours(day, 12), self._hours(day + length, 12)
            if not self._free(first, last):
                continue
            self._mark(first, last)
            for d in range(day, day + length):
                for _ in range(rng.randint(5, 12)):
                    self._add(self._hours(d, rng.uniform(6.5, 23.5)), rng.uniform(2.0, 9.0))
                for _ in range(rng.randint(0, 2)):
                    self._add(self._hours(d, rng.uniform(0.0, 5.5)), 6.0)
                start = self._hours(d, rng.uniform(17.0, 19.5))
                for s in range(start, start + rng.randint(4, 9)):
                    if 0 <= s < self.t.slots:
                        self.t.gas_m3[s] += rng.uniform(0.3, 0.5) * 5 / 60
            stays += 1
        self.case.traits["visitor_stays"] = stays

    def normal_flows(self) -> None:
        """The longest ordinary flow of each kind outside incidents, for the "past normal" delays."""
        water = _longest(self.t.water_l, self.busy, FLOWING_L_PER_SLOT) * 5.0
        gas = _longest(self.t.gas_m3, self.busy, 0.02 * 5 / 60) * 5.0
        self.t.incidents = [
            replace(g, normal_max_min=water if g.incident is IncidentType.TAP_LEFT_ON else gas)
            if g.incident in (IncidentType.TAP_LEFT_ON, IncidentType.STOVE_LEFT_ON)
            else g
            for g in self.t.incidents
        ]

    def cistern_leak(self) -> None:
        """A running cistern: 0.03-0.3 L/min for 2-10 days, once or twice in the run."""
        rng = self.rng
        if rng.random() >= 0.5:
            return
        rate = rng.uniform(0.03, 0.3)
        for _ in range(rng.randint(1, 2)):
            first = rng.randrange(self.t.slots)
            for s in range(first, min(self.t.slots, first + rng.randint(2, 10) * SLOTS_PER_DAY)):
                self.t.water_l[s] += rate * 5
        self.case.traits["leak_l_min"] = round(rate, 3)

    def watch_habits(self) -> None:
        """Ordinary silences: hub-linked (silent when out), off at night, silent on the charger, forgotten."""
        rng, t = self.rng, self.t
        online = t.online["wearable"]
        hub = rng.random() < 0.5
        night_off = rng.random() < 0.35
        charger_silent = rng.random() < 0.4
        forgets = rng.uniform(1 / 15, 1 / 5) if rng.random() < 0.5 else 0.0
        if hub:
            for s in range(t.slots):
                if self.out[s]:
                    online[s] = 0
        for day in range(t.days):
            if night_off:
                first = self._hours(day, t.profile.sleep + rng.gauss(0, 0.3))
                _fill(online, first, self._hours(day + 1, t.profile.wake + rng.gauss(0, 0.3)), 0)
            if charger_silent:
                first = self._hours(day, rng.uniform(18.0, 21.0))
                _fill(online, first, first + rng.randint(12, 36), 0)
            if rng.random() < forgets:
                first = self._hours(day, rng.uniform(7.0, 12.0))
                for s in range(first, min(t.slots, first + rng.randint(72, 168))):
                    t.worn[s] = 0
        self.case.traits.update(hub=hub, night_off=night_off, charger_silent=charger_silent, forgets=round(forgets, 3))


def _fill(buf: bytearray, first: int, last: int, value: int) -> None:
    """Set ``buf[first:last]`` to ``value``, clamped to the buffer (a slice assignment must not resize it)."""
    first, last = max(0, first), min(len(buf), last)
    if last > first:
        buf[first:last] = bytes([value]) * (last - first)


def _longest(values: Sequence[float], busy: bytearray, threshold: float) -> int:
    best = run = 0
    for i, value in enumerate(values):
        run = run + 1 if value >= threshold and not busy[i] else 0
        best = max(best, run)
    return best
