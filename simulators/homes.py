"""Pure core of the simulators: the registry of simulated homes, and devices that speak the native payloads.

What the resident does comes from :mod:`simulators.residents` (profiles, day-to-day variation);
everything is a function of (seed, simulated time), so the same seed replays the same week.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from carebed.registry import DeviceSpec, HomeSpec, RegistryFile, ResidentSpec, ResponderSpec
from carebed.schemas import DeviceKind
from carebed.topics import DeviceChannel
from simulators.residents import SLOT, Timeline, build_timeline

SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙"]
GIVEN = ["秀英", "桂英", "玉兰", "淑珍", "建国", "国华", "志明", "凤英", "德明", "美华", "文华", "淑兰"]
STREETS = ["朝阳路", "人民路", "解放路", "中山路", "和平街", "建设路"]
RELATIONS = ["daughter", "son", "neighbour", "community_worker"]

SIMULATED_KINDS = (DeviceKind.WEARABLE, DeviceKind.WATER_METER, DeviceKind.GAS_SENSOR)
LIVE_DAYS = 7
REPORT_EVERY = {
    DeviceKind.WEARABLE: timedelta(minutes=1),
    DeviceKind.WATER_METER: timedelta(minutes=5),
    DeviceKind.GAS_SENSOR: timedelta(minutes=5),
}


class Incident(StrEnum):
    SOS = "sos"
    FALL = "fall"
    GAS = "gas"
    LEAK = "leak"


@dataclass(frozen=True, slots=True)
class Message:
    """One payload a device would publish, with its simulated time."""

    device_id: str
    channel: DeviceChannel
    payload: dict[str, Any]
    ts: datetime


def build_registry(homes: int, seed: int) -> RegistryFile:
    """N homes, each with one resident, a wearable, a water meter, a gas sensor and two responders."""
    rng = random.Random(seed)
    specs = []
    for n in range(1, homes + 1):
        home_id = f"home-{n:05d}"
        street = rng.choice(STREETS)
        specs.append(
            HomeSpec(
                id=home_id,
                address=f"{street}{rng.randint(1, 300)}号{rng.randint(1, 6)}单元{rng.randint(101, 1802)}",
                street=f"{street}街道",
                community=f"{street}第{rng.randint(1, 5)}社区",
                residents=[
                    ResidentSpec(name=rng.choice(SURNAMES) + rng.choice(GIVEN), birth_year=rng.randint(1930, 1955))
                ],
                devices=[
                    DeviceSpec(id=f"{home_id}-{kind.value.replace('_', '-')}", kind=kind) for kind in SIMULATED_KINDS
                ],
                responders=[
                    ResponderSpec(
                        name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                        phone=f"+86139{rng.randint(0, 99_999_999):08d}",
                        relation=rng.choice(RELATIONS),
                        language="en" if rng.random() < 0.1 else "zh-CN",
                    )
                    for _ in range(2)
                ],
            )
        )
    return RegistryFile(homes=specs)


@dataclass
class SimulatedHome:
    """A home's three devices, advanced in simulated time; the resident's days come from :mod:`simulators.residents`."""

    spec: HomeSpec
    tz: ZoneInfo
    rng: random.Random
    water_l: float = 0.0
    gas_m3: float = 0.0
    steps: int = 0
    seq: dict[str, int] = field(default_factory=dict)
    incident: Incident | None = None
    incident_at: datetime | None = None
    timeline: Timeline | None = None

    def __post_init__(self) -> None:
        self.water_l = self.rng.uniform(10_000, 90_000)
        self.gas_m3 = self.rng.uniform(100, 900)
        self.seed = self.rng.randrange(2**32)

    def device(self, kind: DeviceKind) -> str:
        return next(d.id for d in self.spec.devices if d.kind is kind)

    def inject(self, incident: Incident, at: datetime) -> list[Message]:
        """Start an incident; SOS and fall are one event each, gas and leak change later readings."""
        self.incident, self.incident_at = incident, at
        if incident in (Incident.SOS, Incident.FALL):
            return [self._message(self.device(DeviceKind.WEARABLE), DeviceChannel.EVENT, at, event=incident.value)]
        if incident is Incident.LEAK:
            return [self._message(self.device(DeviceKind.WATER_METER), DeviceChannel.EVENT, at, event="leak")]
        return []

    def _slot(self, now: datetime) -> tuple[Timeline, int]:
        """The resident's 5-minute slot at ``now``, drawing the next week when the current one runs out."""
        t = self.timeline
        if t is None or not 0 <= t.slot_of(now) < t.slots:
            t = self.timeline = build_timeline(
                self.spec.id,
                now,
                LIVE_DAYS,
                self.seed + int(now.timestamp()) // 86400,
                self.tz,
                trips=False,
                faults=False,
            )
        return t, t.slot_of(now)

    def prepare(self, now: datetime) -> None:
        self._slot(now)

    def report(self, kind: DeviceKind, now: datetime) -> Message:
        t, slot = self._slot(now)
        share = REPORT_EVERY[kind] / SLOT
        device_id = self.device(kind)
        if kind is DeviceKind.WEARABLE:
            worn = bool(t.worn[slot])
            moving = t.steps[slot] > 0
            if worn:
                self.steps += int(t.steps[slot] * share)
            hour = self._hour(now)
            resting = 58 + 6 * math.sin(hour / 24 * 2 * math.pi)
            return self._message(
                device_id,
                DeviceChannel.TELEMETRY,
                now,
                heart_rate_bpm=round(resting + (12 if moving else 0) + self.rng.gauss(0, 3)) if worn else None,
                spo2_pct=round(min(100.0, self.rng.gauss(97, 1)), 1) if worn else None,
                steps=self.steps,
                worn=worn,
                battery_pct=90,
            )
        if kind is DeviceKind.WATER_METER:
            leaking = self.incident is Incident.LEAK
            flow = t.water_l[slot] / 5 + (2.5 if leaking else 0.0)
            self.water_l += flow * share * 5
            return self._message(
                device_id,
                DeviceChannel.TELEMETRY,
                now,
                volume_l=round(self.water_l, 2),
                flow_l_min=round(flow, 2),
                leak=leaking,
                battery_pct=80,
            )
        flow_m3_h = t.gas_m3[slot] * 12
        self.gas_m3 += flow_m3_h * share * 5 / 60
        lel = max(0.0, self.rng.gauss(0.5, 0.3))
        if self.incident is Incident.GAS and self.incident_at is not None:
            minutes = (now - self.incident_at).total_seconds() / 60
            lel = min(40.0, lel + 3.0 * minutes)
        return self._message(
            device_id,
            DeviceChannel.TELEMETRY,
            now,
            ch4_lel_pct=round(lel, 1),
            co_ppm=round(max(0.0, self.rng.gauss(2, 1)), 1),
            volume_m3=round(self.gas_m3, 3),
            flow_m3_h=round(flow_m3_h, 3),
            battery_pct=85,
        )

    def _hour(self, now: datetime) -> float:
        local = now.astimezone(self.tz)
        return local.hour + local.minute / 60

    def _message(self, device_id: str, channel: DeviceChannel, ts: datetime, **values: Any) -> Message:
        seq = self.seq.get(device_id, 0)
        self.seq[device_id] = seq + 1
        present = {k: v for k, v in values.items() if v is not None}
        payload = {"ts": ts.isoformat(timespec="seconds").replace("+00:00", "Z"), "seq": seq, **present}
        return Message(device_id, channel, payload, ts)
