"""MQTT adapter of the gateway: device topics in, readings and dead letters out.

The gateway has two lanes. Device events (SOS, falls, leaks) come on a session of their own and
leave at once; telemetry, status and the vendor formats are batched and run at bulk priority.
One process can run both lanes, or each lane can run in a process of its own (`--lane`), which
is how `carebed up` and docker-compose run them: the bulk lane's niced thread, preempted while it
held the GIL, kept the event lane waiting under load (docs/performance.md, seventh round).

Every message is acknowledged: a reading, a dead letter, or (beyond a device's share of dead
letters, gateway/fairness.py) only a count. Should the handler itself raise, the MQTT wrapper
dead-letters the message as `unprocessable` rather than leave it in the broker's in-flight window.
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
from carebed.schemas import DeadLetter, DeviceEntry, Reading, RejectReason, dump, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from gateway.archive import Archive, ArchiveConfig
from gateway.core import Normaliser, dead_letter, describe_exception
from gateway.fairness import Fairness, RejectionSampler

log = logging.getLogger(__name__)

MESSAGES_IN = Counter("carebed_gateway_messages_total", "Device messages received")
REJECTED = Counter("carebed_gateway_rejected_total", "Device messages rejected, by reason", ["reason"])
UNTOLD = Counter(
    "carebed_gateway_rejections_untold_total",
    "Rejections counted but neither logged nor published, past a device's share per minute, by reason",
    ["reason"],
)
CLOCK_CORRECTED = Counter(
    "carebed_gateway_clock_corrected_total",
    "Readings whose device time was replaced by the receive time: ahead (beyond the skew) or unreadable (events)",
    ["why"],
)
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
        self.fairness = (
            Fairness(
                settings.gateway_device_rate_per_s,
                settings.gateway_device_burst,
                settings.gateway_device_event_rate_per_s,
                settings.gateway_device_event_burst,
            )
            if settings.gateway_device_rate_per_s is not None
            else None
        )
        self.sampler = RejectionSampler(settings.gateway_rejections_told_per_min)
        self.archive = _archive(settings)
        self.clients: list[MqttClient] = []
        if Lane.EVENTS in lanes:
            events = MqttClient(settings, client_id="carebed-gateway-events")
            events.subscribe(topics.DEVICE_EVENT_SUBSCRIPTION, self.handle, on_error=self.unprocessable)
            self.clients.append(events)
        if Lane.TELEMETRY in lanes:
            bulk = MqttClient(settings, client_id="carebed-gateway", batch_window_s=BATCH_WINDOW_S, bulk=True)
            for adapter in self.normaliser.adapters:
                for subscription in adapter.subscriptions:
                    bulk.subscribe(subscription, self.handle, on_error=self.unprocessable)
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
        sender = self.normaliser.sender(message.topic)
        event = isinstance(result, Reading) and result.channel is DeviceChannel.EVENT
        # Rejected messages spend the sender's share too: a flood of garbage is a flood.
        within = self.fairness is None or self.fairness.admit(sender, event, time.monotonic())
        if not within and isinstance(result, Reading):
            share = "events" if event else "messages"
            detail = f"{sender!r} sent more {share} than its share; this one was dropped"
            result = dead_letter(RejectReason.RATE_LIMITED, detail, message.topic, message.payload, result.received_at)
        if isinstance(result, DeadLetter):
            return self._reject(result, sender)
        if result.clock_corrected:
            CLOCK_CORRECTED.labels("ahead" if result.device_clock_ahead_s is not None else "unreadable").inc()
        if self.archive is not None:
            self.archive.add(result)
        lane = topics.EVENTS if result.channel is DeviceChannel.EVENT else topics.READINGS
        return [Outbound(lane, dump(result), batched=True)]

    def unprocessable(self, message: Inbound, exc: Exception) -> Sequence[Outbound]:
        """The handler itself raised on this message: dead-letter it like any other poison."""
        detail = describe_exception(exc)
        result = dead_letter(RejectReason.UNPROCESSABLE, detail, message.topic, message.payload, utc_now())
        return self._reject(result, self.normaliser.sender(message.topic))

    def _reject(self, result: DeadLetter, sender: str) -> Sequence[Outbound]:
        """Counted always; told (logged in one line, published) only within the sender's share per minute."""
        reason = result.reason.value
        REJECTED.labels(reason).inc()
        told = self.sampler.note(sender, reason, time.monotonic())
        about = {"reason": reason, "sender": sender}
        if told.untold:
            log.warning("rejections counted but not told in the last minute", extra={**about, "count": told.untold})
        if told.silenced:
            log.warning("more rejections this minute are counted only", extra=about)
        if not told.tell:
            UNTOLD.labels(reason).inc()
            return ()
        log.warning("message rejected", extra={**about, "topic": result.topic, "detail": result.detail[:200]})
        return [Outbound(topics.dead_letter(reason), dump(result))]


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
