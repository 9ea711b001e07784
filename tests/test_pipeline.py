"""Gateway and detector adapters against a real Mosquitto and a real SQLite registry."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from carebed import topics
from carebed.mqtt import MqttClient, Outbound
from carebed.registry import RegistryFile
from carebed.schemas import DeadLetter, Finding, FindingCode, Reading, RejectReason, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from detector.service import Detector
from gateway.service import Gateway
from tests.support import Observer

pytestmark = pytest.mark.integration


@pytest.fixture
def running(settings: Settings, database: str) -> Iterator[tuple[Gateway, Detector]]:
    gateway = Gateway(settings)
    gateway.refresh_registry()
    detector = Detector(settings)
    gateway.mqtt.start()
    detector.mqtt.start()
    yield gateway, detector
    gateway.mqtt.stop()
    detector.stop()


def observe(settings: Settings, topic_filter: str) -> Observer:
    observer = Observer(settings, topic_filter)
    observer.client.start()
    return observer


def test_an_sos_becomes_a_reading_and_a_finding(
    settings: Settings, registry: RegistryFile, running: tuple[Gateway, Detector], device: MqttClient
) -> None:
    home = registry.homes[0]
    wearable = home.devices[0].id
    readings = observe(settings, topics.READINGS_SUBSCRIPTION)
    findings = observe(settings, topics.FINDINGS_SUBSCRIPTION)
    payload = {"ts": utc_now().isoformat(), "seq": 1, "event": "sos"}
    device.publish(Outbound(topics.device(wearable, DeviceChannel.EVENT), json.dumps(payload).encode()))

    reading = Reading.model_validate_json(readings.next().payload)
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
    readings = observe(settings, topics.READINGS_SUBSCRIPTION)
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
    assert Reading.model_validate_json(readings.next().payload).heart_rate_bpm == 72
