"""Gateway and detector adapters against a real Mosquitto and a real SQLite registry."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from carebed import topics
from carebed.db import make_engine, make_sessionmaker
from carebed.mqtt import Inbound, MqttClient, Outbound
from carebed.registry import RegistryFile, import_registry
from carebed.schemas import DeadLetter, Finding, FindingCode, RejectReason, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from detector.alarm_service import AlarmLane
from detector.service import Detector
from gateway.service import Gateway
from tests.support import Observer

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def running(settings: Settings, database: str) -> Iterator[tuple[Gateway, Detector]]:
    gateway = Gateway(settings)
    gateway.refresh_registry()
    detector = Detector(settings)
    alarms = AlarmLane(settings)
    gateway.start()
    detector.start()
    alarms.mqtt.start()
    yield gateway, detector
    gateway.stop()
    detector.stop()
    alarms.mqtt.stop()


def observe(settings: Settings, topic_filter: str) -> Observer:
    observer = Observer(settings, topic_filter)
    observer.client.start()
    return observer


def test_an_sos_becomes_a_reading_and_a_finding(
    settings: Settings, registry: RegistryFile, running: tuple[Gateway, Detector], device: MqttClient
) -> None:
    home = registry.homes[0]
    wearable = home.devices[0].id
    readings = observe(settings, topics.EVENTS)
    findings = observe(settings, topics.FINDINGS_SUBSCRIPTION)
    payload = {"ts": utc_now().isoformat(), "seq": 1, "event": "sos"}
    device.publish(Outbound(topics.device(wearable, DeviceChannel.EVENT), json.dumps(payload).encode()))

    reading = readings.next_reading()
    assert (reading.home_id, reading.device_id, reading.event) == (home.id, wearable, "sos")
    message = findings.next()
    finding = Finding.model_validate_json(message.payload)
    assert message.topic == topics.findings(home.id)
    assert (finding.code, finding.home_id, finding.device_id) == (FindingCode.SOS, home.id, wearable)


def test_bad_input_is_dead_lettered_with_its_reason_and_the_gateway_carries_on(
    settings: Settings, registry: RegistryFile, running: tuple[Gateway, Detector], device: MqttClient
) -> None:
    wearable = registry.homes[0].devices[0].id
    dead = observe(settings, topics.DEAD_LETTER_SUBSCRIPTION)
    readings = observe(settings, topics.READINGS)
    bad = [
        (topics.device("ghost-device", DeviceChannel.TELEMETRY), b'{"ts": "2026-11-24T08:00:00Z"}'),
        (topics.device(wearable, DeviceChannel.TELEMETRY), b"\x00\x01 not json"),
        (topics.device(wearable, DeviceChannel.TELEMETRY), b'{"ts": "2026-11-24T08:00:00Z", "pulse": 80}'),
    ]
    for topic, payload in bad:
        device.publish(Outbound(topic, payload))
    reasons = [DeadLetter.model_validate_json(dead.next().payload).reason for _ in bad]
    assert reasons == [RejectReason.UNKNOWN_DEVICE, RejectReason.NOT_JSON, RejectReason.INVALID_PAYLOAD]

    good = {"ts": utc_now().isoformat(), "heart_rate_bpm": 72, "worn": True}
    device.publish(Outbound(topics.device(wearable, DeviceChannel.TELEMETRY), json.dumps(good).encode()))
    assert readings.next_reading().heart_rate_bpm == 72


def test_zigbee2mqtt_and_chirpstack_messages_flow_like_native_ones(
    settings: Settings, database: str, running: tuple[Gateway, Detector], device: MqttClient
) -> None:
    vendor_home = {
        "id": "vendor-home",
        "residents": [{"name": "Test Resident"}],
        "devices": [
            {"id": "hub-1", "kind": "hub"},
            {"id": "kitchen-gas", "kind": "gas_sensor", "via": "hub-1"},
            {"id": "0101010101010101", "kind": "water_meter", "via": "chirpstack"},
        ],
    }
    engine = make_engine(database)
    with make_sessionmaker(engine).begin() as session:
        import_registry(session, RegistryFile.model_validate({"homes": [vendor_home]}))
    engine.dispose()
    running[0].refresh_registry()
    findings = observe(settings, topics.FINDINGS_SUBSCRIPTION)
    readings = observe(settings, topics.READINGS)

    device.publish(Outbound("carebed/v1/z2m/hub-1/kitchen-gas", FIXTURES.joinpath("zigbee2mqtt/gas.json").read_bytes()))
    uplink = FIXTURES.joinpath("chirpstack/uplink_water_meter.json").read_bytes()
    device.publish(Outbound("application/app-1/device/0101010101010101/event/up", uplink))

    received = {readings.next_reading().device_id for _ in range(2)}
    assert received == {"kitchen-gas", "0101010101010101"}
    finding = Finding.model_validate_json(findings.next().payload)
    assert (finding.code, finding.home_id) == (FindingCode.GAS_ALARM, "vendor-home")


def test_routine_readings_share_messages_and_each_device_message_is_acknowledged_once(
    settings: Settings, registry: RegistryFile, running: tuple[Gateway, Detector], device: MqttClient
) -> None:
    """A burst arrives whole in fewer broker messages; a gateway restart re-delivers none of it."""
    wearable = registry.homes[0].devices[0].id
    readings = observe(settings, topics.READINGS)
    start = utc_now().replace(microsecond=0)

    def publish(n: int) -> None:
        payload = {"ts": (start - timedelta(seconds=n)).isoformat(), "heart_rate_bpm": 70, "worn": True}
        device.publish(Outbound(topics.device(wearable, DeviceChannel.TELEMETRY), json.dumps(payload).encode()))

    for n in range(1, 201):
        publish(n)
    received = [readings.next_reading() for _ in range(200)]
    assert len({r.ts for r in received}) == 200
    assert readings.messages.qsize() == 0 and readings.received < 200, "the gateway gathers readings into batches"

    gateway = running[0]
    gateway.stop()
    restarted = Gateway(settings)
    restarted.refresh_registry()
    restarted.start()
    try:
        publish(0)
        assert readings.next_reading().ts == start, "nothing re-delivered before the next message"
    finally:
        restarted.stop()


def test_bulk_lanes_handle_their_messages_at_a_lower_cpu_priority_than_event_lanes(
    settings: Settings, device: MqttClient
) -> None:
    """Telemetry yields a core to the SOS path: the kernel holds the bulk lane's thread nicer."""
    niceness: dict[bool, queue.Queue[int]] = {True: queue.Queue(), False: queue.Queue()}

    def recorder(bulk: bool) -> Callable[[Inbound], list[Outbound]]:
        def handle(message: Inbound) -> list[Outbound]:
            niceness[bulk].put(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return []

        return handle

    lanes = []
    for bulk in niceness:
        lane = MqttClient(settings, client_id=f"test-lane-{bulk}", persistent=False, bulk=bulk)
        lane.subscribe(f"test/lane-{bulk}", recorder(bulk))
        lane.start()
        lanes.append(lane)
    try:
        for bulk in niceness:
            device.publish(Outbound(f"test/lane-{bulk}", b"{}"))
        service_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
        assert niceness[False].get(timeout=10) == service_nice
        assert niceness[True].get(timeout=10) == min(19, service_nice + settings.bulk_nice) > service_nice
    finally:
        for lane in lanes:
            lane.stop()
