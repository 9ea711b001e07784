"""MQTT adapter of the simulators: publishes the homes' messages at real intervals, sped up."""

from __future__ import annotations

import heapq
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from carebed import topics
from carebed.mqtt import MqttClient, Outbound
from carebed.schemas import DeviceKind, utc_now
from carebed.settings import Settings
from simulators.homes import REPORT_EVERY, SIMULATED_KINDS, Incident, Message, SimulatedHome, build_registry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    homes: int
    speed: float
    seed: int = 1
    incident: Incident | None = None
    incident_after_s: float = 15.0
    duration_s: float | None = None
    ground_truth: Path | None = None


class Simulation:
    """Simulated time runs ``speed`` times faster than the wall clock, from the moment it starts."""

    def __init__(self, settings: Settings, plan: SimulationPlan) -> None:
        self.plan = plan
        rng = random.Random(plan.seed)
        registry = build_registry(plan.homes, plan.seed)
        self.homes = [SimulatedHome(spec, settings.tz, random.Random(rng.random())) for spec in registry.homes]
        self.mqtt = MqttClient(
            settings, client_id=f"carebed-sim-{plan.seed}-{random.getrandbits(32):08x}", persistent=False
        )
        self.published = 0

    def run(self, stopping: threading.Event) -> None:
        self.mqtt.start()
        wall_start = time.monotonic()
        sim_start = utc_now().replace(microsecond=0)
        queue: list[tuple[datetime, int, int, DeviceKind]] = []
        for h in range(len(self.homes)):
            for k, kind in enumerate(SIMULATED_KINDS):
                offset = timedelta(seconds=random.Random(h * 3 + k).uniform(0, REPORT_EVERY[kind].total_seconds()))
                heapq.heappush(queue, (sim_start + offset, h, k, kind))
        incident_due = self.plan.incident is not None
        while not stopping.is_set():
            elapsed = time.monotonic() - wall_start
            if self.plan.duration_s is not None and elapsed >= self.plan.duration_s:
                break
            if incident_due and elapsed >= self.plan.incident_after_s:
                incident_due = False
                self._inject(sim_start + timedelta(seconds=elapsed * self.plan.speed))
            due, h, k, kind = queue[0]
            wait = (due - sim_start).total_seconds() / self.plan.speed - elapsed
            if wait > 0:
                stopping.wait(min(wait, 0.25))
                continue
            heapq.heapreplace(queue, (due + REPORT_EVERY[kind], h, k, kind))
            self._publish(self.homes[h].report(kind, due))
        self.mqtt.stop()
        log.info("simulation stopped", extra={"published": self.published})

    def _inject(self, at: datetime) -> None:
        assert self.plan.incident is not None
        home = self.homes[0]
        for message in home.inject(self.plan.incident, at):
            self._publish(message)
        log.info("incident injected", extra={"home_id": home.spec.id, "incident": self.plan.incident.value})
        if self.plan.ground_truth is not None:
            record = {"home_id": home.spec.id, "incident": self.plan.incident.value, "onset": at.isoformat()}
            with self.plan.ground_truth.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _publish(self, message: Message) -> None:
        payload = json.dumps(message.payload, separators=(",", ":")).encode()
        self.mqtt.publish(Outbound(topics.device(message.device_id, message.channel), payload))
        self.published += 1
