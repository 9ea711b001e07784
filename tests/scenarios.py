"""Hand-built homes for the detector's unit tests: a simple daily routine, the meters a test asks for, and noise.

Each minute of the routine says what the resident does (steps, litres of water, m³ of gas); the
devices then report it as a test configures them: a wearable every 5 minutes, a water meter every
5, 15 or 60 minutes with or without a flow field, a cistern leak under everything, an appliance
on a timer. Nothing here is tuned to the detector: the routine is what a person does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from carebed.schemas import DeviceKind, Reading
from carebed.topics import DeviceChannel

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 1, 16, tzinfo=UTC)  # local midnight
HOME = "home-00001"


@dataclass(frozen=True, slots=True)
class Home:
    days: int
    seed: int = 1
    wearable: bool = True
    gas: bool = True
    meter_every_min: int = 5
    flow_field: bool = True
    leak_l_min: float = 0.0
    schedule: tuple[float, int, float] | None = None  # local hour it starts, minutes, L/min
    wake: float = 7.0
    sleep: float = 22.0
    stop_at: datetime | None = None  # the resident collapses: nothing but the appliances from here
    tap_on: tuple[datetime, int] | None = None  # a tap left running at 6 L/min from then, for minutes
    low_from_day: int | None = None  # illness: activity falls over 4 days to 40 % from this day
    watch_off_at_night: bool = False  # the watch is on the night stand from 22:00 to 07:00
    wandering: tuple[datetime, int] | None = None  # up at night from then, for minutes: walks, taps, kettle
    lose_every: int = 0  # the meter's link loses two reports running every n
    minutes: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "minutes", self.days * 1440)


def at(day: int, hour: float) -> datetime:
    """Local time on a day of the scenario, as UTC."""
    return START + timedelta(days=day, hours=hour)


def _routine(home: Home) -> tuple[list[int], list[float], list[float]]:
    rng = random.Random(home.seed)
    steps = [0] * home.minutes
    water = [0.0] * home.minutes
    gas = [0.0] * home.minutes
    for day in range(home.days):
        base = day * 1440
        level = 1.0
        if home.low_from_day is not None and day >= home.low_from_day:
            level = max(0.4, 1 - 0.15 * (day - home.low_from_day + 1))
        wake = base + int((home.wake + rng.gauss(0, 0.4)) * 60)
        sleep = base + int((home.sleep + rng.gauss(0, 0.5)) * 60)
        minute = wake
        while minute < sleep:
            if rng.random() < level:
                for m in range(minute, min(minute + rng.randint(2, 10), home.minutes)):
                    steps[m] += rng.randint(5, 20)
            minute += int(rng.expovariate(1 / (12 / level))) + 5
        for _ in range(int(7 * level) + rng.randint(0, 2)):
            m = rng.randint(wake, sleep - 1)
            water[m] += rng.choice((6.0, 6.0, 3.0, 2.0))
            steps[m] += 10
        for m in range(wake, wake + 4):
            water[m] += 1.5
        for hour in (7.5, 12.0, 18.0):
            if rng.random() < level:
                start = base + int((hour + rng.gauss(0, 0.3)) * 60)
                for m in range(start, start + rng.randint(15, 35)):
                    gas[m] += 0.4 / 60
        night = sleep + rng.randint(120, 300)
        if night < home.minutes:
            water[night] += 6.0
            steps[night] += 20
    return steps, water, gas


def readings(home: Home) -> Iterator[Reading]:
    """The home's readings in time order, as the gateway would hand them on."""
    steps, water, gas = _routine(home)
    if home.stop_at is not None:
        stop = int((home.stop_at - START).total_seconds() // 60)
        for series in (steps, water, gas):
            for m in range(stop, home.minutes):
                series[m] = 0
    flow = list(water)
    for m in range(home.minutes):
        flow[m] += home.leak_l_min
        water[m] += home.leak_l_min
    if home.schedule is not None:
        hour, length, rate = home.schedule
        for day in range(home.days):
            first = day * 1440 + int(hour * 60)
            for m in range(first, min(first + length, home.minutes)):
                water[m] += rate
                flow[m] += rate
    if home.tap_on is not None:
        first = int((home.tap_on[0] - START).total_seconds() // 60)
        for m in range(first, min(first + home.tap_on[1], home.minutes)):
            water[m] += 6.0
            flow[m] += 6.0
    if home.wandering is not None:
        first = int((home.wandering[0] - START).total_seconds() // 60)
        for m in range(first, min(first + home.wandering[1], home.minutes)):
            steps[m] += 8
            if (m - first) % 12 == 0:
                water[m] += 2.0
                flow[m] += 2.0
            if (m - first) % 30 < 4:
                gas[m] += 0.3 / 60
    volume, gas_volume, step_count = 1000.0, 10.0, 0
    for minute in range(home.minutes):
        volume += water[minute]
        gas_volume += gas[minute]
        step_count += steps[minute]
        ts = START + timedelta(minutes=minute + 1)
        if home.wearable and (minute + 1) % 5 == 0:
            off = home.watch_off_at_night and not 7 <= (minute / 60) % 24 < 22
            yield _reading(DeviceKind.WEARABLE, ts, steps=step_count, worn=not off)
        sent = (minute + 1) // home.meter_every_min
        if (minute + 1) % home.meter_every_min == 0 and not (home.lose_every and sent % home.lose_every < 2):
            rate = flow[minute] if home.flow_field else None
            yield _reading(DeviceKind.WATER_METER, ts, water_volume_l=round(volume, 2), water_flow_l_min=rate)
        if home.gas and (minute + 1) % 5 == 0:
            m3 = round(gas_volume, 4)
            yield _reading(DeviceKind.GAS_SENSOR, ts, gas_volume_m3=m3, gas_flow_m3_h=gas[minute] * 60)


def _reading(kind: DeviceKind, ts: datetime, **values: float | int | bool | None) -> Reading:
    return Reading(
        home_id=HOME,
        device_id=f"{HOME}-{kind.value.replace('_', '-')}",
        device_kind=kind,
        channel=DeviceChannel.TELEMETRY,
        ts=ts,
        received_at=ts,
        **values,
    )
