"""MQTT adapter of the gateway: device topics in, readings and dead letters out.

The gateway has two lanes. Device events (SOS, falls, leaks) come on a session of their own and
leave at once; telemetry, status and the vendor formats are batched and run at bulk priority.
One process can run both lanes, or each lane can run in a process of its own (`--lane`), which
is how `carebed up` and docker-compose run them: the bulk lane's niced thread, preempted while it
held the GIL, kept the event lane waiting under load (docs/performance.md, seventh round).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from datetime import timedelta
from enum import StrEnum

from prometheus_client import Counter, Gauge

from carebed import service, topics
from carebed.db import make_engine, make_sessionmaker
from carebed.health import HealthReporter
from carebed.mqtt import Inbound, MqttClient, Outbound
from carebed.registry import device_directory
from carebed.schemas import DeadLetter, DeviceEntry, RejectReason, dump, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from gateway.archive import Archive, ArchiveConfig
from gateway.core import Normaliser

log = logging.getLogger(__name__)

MESSAGES_IN = Counter("carebed_gateway_messages_total", "Device messages received")
REJECTED = Counter("carebed_gateway_rejected_total", "Device messages rejected, by reason", ["reason"])
REGISTRY_REFRESH_S = 5.0
# Routine readings wait up to this long to share one broker message; events never wait.
BATCH_WINDOW_S = 0.05
FRAME_GAPS = Gauge("carebed_gateway_lorawan_frame_gaps", "LoRaWAN uplinks missing by frame counter since start")
DUPLICATE_UPLINKS = Gauge("carebed_gateway_duplicate_uplinks", "Repeated ChirpStack uplinks dropped since start")


class Lane(StrEnum):
    TELEMETRY = "telemetry"  # telemetry and status of native devices, and every vendor format
    EVENTS = "events"  # native device events


class Gateway:
    def __init__(self, settings: Settings, lanes: Collection[Lane] = tuple(Lane)) -> None:
        self.settings = settings
        self._sessions = make_sessionmaker(make_engine(settings.sqlalchemy_url))
        self._directory: dict[str, DeviceEntry] = {}
        self._refreshed_at = 0.0
        skew = settings.gateway_max_future_skew_s
        self.normaliser = Normaliser(timedelta(seconds=skew) if skew is not None else None)
        FRAME_GAPS.set_function(lambda: self.normaliser.chirpstack.frame_gaps)
        DUPLICATE_UPLINKS.set_function(lambda: self.normaliser.chirpstack.duplicates)
        self.archive = _archive(settings)
        self.clients: list[MqttClient] = []
        if Lane.EVENTS in lanes:
            events = MqttClient(settings, client_id="carebed-gateway-events")
            events.subscribe(topics.DEVICE_EVENT_SUBSCRIPTION, self.handle)
            self.clients.append(events)
        if Lane.TELEMETRY in lanes:
            bulk = MqttClient(settings, client_id="carebed-gateway", batch_window_s=BATCH_WINDOW_S, bulk=True)
            for adapter in self.normaliser.adapters:
                for subscription in adapter.subscriptions:
                    bulk.subscribe(subscription, self.handle)
            self.clients.append(bulk)

    def start(self) -> None:
        for client in self.clients:
            client.start()

    def stop(self) -> None:
        for client in reversed(self.clients):
            client.stop()

    def refresh_registry(self) -> None:
        with self._sessions() as session:
            self._directory = device_directory(session)
        self._refreshed_at = time.monotonic()
        log.info("registry loaded", extra={"devices": len(self._directory)})

    def handle(self, message: Inbound) -> Sequence[Outbound]:
        MESSAGES_IN.inc()
        result = self.normaliser.normalise(message.topic, message.payload, utc_now(), self._directory)
        if (
            isinstance(result, DeadLetter)
            and result.reason in (RejectReason.UNKNOWN_DEVICE, RejectReason.WRONG_PATH)
            and time.monotonic() - self._refreshed_at > REGISTRY_REFRESH_S
        ):
            self.refresh_registry()
            result = self.normaliser.normalise(message.topic, message.payload, utc_now(), self._directory)
        if result is None:
            return ()
        if isinstance(result, DeadLetter):
            REJECTED.labels(result.reason.value).inc()
            log.warning("message rejected", extra={"reason": result.reason.value, "topic": message.topic})
            return [Outbound(topics.dead_letter(result.reason.value), dump(result))]
        if self.archive is not None:
            self.archive.add(result)
        lane = topics.EVENTS if result.channel is DeviceChannel.EVENT else topics.READINGS
        return [Outbound(lane, dump(result), batched=True)]


def _archive(settings: Settings) -> Archive | None:
    if not settings.influx_url:
        return None
    token = settings.influx_token.get_secret_value() if settings.influx_token else ""
    return Archive(
        ArchiveConfig(
            url=settings.influx_url,
            token=token,
            org=settings.influx_org,
            bucket=settings.influx_bucket,
            spool_dir=settings.data_dir / "gateway" / "archive-spool",
        )
    )


def run(settings: Settings, lanes: Collection[Lane] = tuple(Lane)) -> None:
    name = "gateway-events" if set(lanes) == {Lane.EVENTS} else "gateway"
    stopping = service.start(name, settings, settings.metrics_port)
    gateway = Gateway(settings, lanes)
    service.wait_for_database(gateway.refresh_registry)
    if gateway.archive is not None:
        gateway.archive.start()
    gateway.start()
    reporter = HealthReporter(name, settings, gateway.clients)
    reporter.start()
    service.ready()
    stopping.wait()
    reporter.stop()
    gateway.stop()
    if gateway.archive is not None:
        gateway.archive.stop()
