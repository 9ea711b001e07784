"""MQTT adapter of the simulators: publishes the homes' messages at real intervals, sped up."""

from __future__ import annotations

import heapq
import json
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from carebed import topics
from carebed.mqtt import MqttClient, Outbound
from carebed.schemas import utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from simulators.delivery import Unconfirmed
from simulators.formats import Format, encode
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
    fmt: Format = Format.NATIVE
    ground_truth: Path | None = None
    record: Path | None = None


@dataclass
class Progress:
    """Live counts for the progress display; written by the simulation thread only."""

    published: Counter[str] = field(default_factory=Counter)
    incidents: int = 0
    sim_time: datetime | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return sum(self.published.values())


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
        # The reference device: an SOS or fall is published again until the alerting service confirms it.
        self.unconfirmed = Unconfirmed()
        if plan.fmt is Format.NATIVE:
            self.mqtt.subscribe(topics.CONFIRMATION_SUBSCRIPTION, self.unconfirmed.confirm)
        self.progress = Progress()
        self.error: Exception | None = None
        self._record: IO[str] | None = None

    def run(self, stopping: threading.Event) -> None:
        """Publish until stopped or the duration is over; a failure is kept in `error` for the caller."""
        self._record = self.plan.record.open("a", encoding="utf-8") if self.plan.record else None
        try:
            self.mqtt.start()
            self._loop(stopping)
            if not self.mqtt.flush():
                raise TimeoutError("the broker did not acknowledge every message sent")
        except Exception as exc:
            self.error = exc
        finally:
            self.mqtt.stop()
            if self._record is not None:
                self._record.close()
            self.progress.done.set()
            log.info(
                "simulation stopped",
                extra={
                    "published": self.progress.total,
                    "resent": self.unconfirmed.resent,
                    "unconfirmed": len(self.unconfirmed),
                },
            )

    def _loop(self, stopping: threading.Event) -> None:
        # Each home draws a week of its resident's life on its first report (≈ 2 ms); drawn up front,
        # a large simulation publishes at its real rate from the first second instead of falling behind.
        prepared_at = utc_now()
        for home in self.homes:
            home.prepare(prepared_at)
        offsets = [
            (random.Random(h * 3 + k).uniform(0, REPORT_EVERY[kind].total_seconds()), h, k, kind)
            for h in range(len(self.homes))
            for k, kind in enumerate(SIMULATED_KINDS)
        ]
        sim_start = utc_now().replace(microsecond=0)
        wall_start = time.monotonic()
        queue = [(sim_start + timedelta(seconds=offset), h, k, kind) for offset, h, k, kind in offsets]
        heapq.heapify(queue)
        incident_due = self.plan.incident is not None
        while not stopping.is_set():
            elapsed = time.monotonic() - wall_start
            self.progress.sim_time = sim_start + timedelta(seconds=elapsed * self.plan.speed)
            if self.plan.duration_s is not None and elapsed >= self.plan.duration_s:
                break
            if incident_due and elapsed >= self.plan.incident_after_s:
                incident_due = False
                self._inject(self.progress.sim_time)
            for message in self.unconfirmed.due():
                self.mqtt.publish_paced(message)
            due, h, k, kind = queue[0]
            wait = (due - sim_start).total_seconds() / self.plan.speed - elapsed
            if wait > 0:
                stopping.wait(min(wait, 0.25))
                continue
            heapq.heapreplace(queue, (due + REPORT_EVERY[kind], h, k, kind))
            self._publish(self.homes[h], self.homes[h].report(kind, due))

    def _inject(self, at: datetime) -> None:
        assert self.plan.incident is not None
        home = self.homes[0]
        for message in home.inject(self.plan.incident, at):
            self._publish(home, message)
        self.progress.incidents += 1
        truth = {"home_id": home.spec.id, "incident": self.plan.incident.value, "onset": at.isoformat()}
        log.info("incident injected", extra={"home_id": home.spec.id, "incident": self.plan.incident.value})
        if self.plan.ground_truth is not None:
            with self.plan.ground_truth.open("a", encoding="utf-8") as f:
                f.write(json.dumps(truth) + "\n")
        self._write_record({"ground_truth": truth})

    def _publish(self, home: SimulatedHome, message: Message) -> None:
        topic, payload = encode(message, home.spec.id, self.plan.fmt, self.plan.seed)
        self.mqtt.publish_paced(Outbound(topic, payload))
        if self.plan.fmt is Format.NATIVE and message.channel is DeviceChannel.EVENT:
            self.unconfirmed.sent(message.device_id, Outbound(topic, payload))
        self.progress.published[message.channel.value] += 1
        if self._record is not None:
            self._write_record({"sent_at": utc_now().isoformat(), "topic": topic, "payload": json.loads(payload)})

    def _write_record(self, entry: dict[str, Any]) -> None:
        if self._record is not None:
            self._record.write(json.dumps(entry, ensure_ascii=False) + "\n")
