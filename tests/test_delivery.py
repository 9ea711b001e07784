"""Delivery of an SOS against a broker crash: the reference device resends until the alerting service confirms."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import httpx
import pytest
import yaml

from alerting.consumer import confirmation_of
from carebed import topics
from carebed.mqtt import Inbound, MqttClient, Outbound
from carebed.registry import RegistryFile
from carebed.schemas import Confirmation, DeviceEvent, DeviceKind, FindingCode, Reading, dump, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from carebed_app.broker import Mosquitto
from detector.alarms import alarms_of
from simulators.delivery import Unconfirmed
from tests.conftest import alerting_url, login
from tests.support import ServiceProcess, wait_for
from tests.test_asyncapi import DOC_PATH, channel_validator

T0 = utc_now().replace(microsecond=0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(device_id: str, name: str, seq: int | None = None) -> Outbound:
    """A device event as a watch in China sends it: T0 in local time with its offset."""
    payload: dict[str, object] = {"ts": T0.astimezone(timezone(timedelta(hours=8))).isoformat(), "event": name}
    if seq is not None:
        payload["seq"] = seq
    return Outbound(topics.device(device_id, DeviceChannel.EVENT), json.dumps(payload).encode())


def confirmation(device_id: str, seq: int | None = None) -> Inbound:
    payload = dump(Confirmation(event=DeviceEvent.SOS, ts=T0, seq=seq))
    return Inbound(topics.confirmation(device_id), payload, False)


def test_an_alarm_is_resent_with_a_growing_pause_until_its_confirmation() -> None:
    clock = Clock()
    unconfirmed = Unconfirmed(resend_after_s=5, resend_max_s=12, clock=clock)
    sos = event("w1", "sos")
    unconfirmed.sent("w1", sos)
    unconfirmed.sent("w1", event("w1", "tamper"))  # not confirmed by anyone: never kept
    assert len(unconfirmed) == 1
    resent = []
    for second in range(40):
        clock.now = second
        resent += [second for message in unconfirmed.due() if message == sos]
    assert resent == [5, 15, 27, 39]  # pauses 5, 10, 12, 12: the payload itself, unchanged
    unconfirmed.confirm(confirmation("w2"))  # another device's
    unconfirmed.confirm(Inbound(topics.confirmation("w1"), b'{"event": "sos"}', False))  # malformed
    assert len(unconfirmed) == 1
    unconfirmed.confirm(confirmation("w1"))  # the same instant, given in UTC
    clock.now = 1000
    assert len(unconfirmed) == 0 and unconfirmed.due() == []


def test_a_confirmation_matches_by_sequence_number_when_the_device_sent_one() -> None:
    unconfirmed = Unconfirmed()
    unconfirmed.sent("w1", event("w1", "sos", seq=7))
    unconfirmed.confirm(confirmation("w1", seq=8))
    assert len(unconfirmed) == 1
    unconfirmed.confirm(confirmation("w1", seq=7))
    assert len(unconfirmed) == 0


@pytest.mark.parametrize("seq", [None, 41])
def test_the_alerting_services_confirmation_is_as_documented_and_settles_the_device(seq: int | None) -> None:
    """From a device's event, through the alarm lane's finding, to the confirmation the device matches."""
    sos = event("w1", "sos", seq)
    reading = Reading(
        home_id="h1",
        device_id="w1",
        device_kind=DeviceKind.WEARABLE,
        channel=DeviceChannel.EVENT,
        ts=T0,
        received_at=utc_now(),
        seq=seq,
        event=DeviceEvent.SOS,
    )
    [finding] = alarms_of(reading)
    [confirmation] = confirmation_of(finding)
    assert confirmation.topic == topics.confirmation("w1")
    doc = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    channel_validator(doc, f"{topics.PREFIX}/confirmations/{{device_id}}", "subscribe").validate(
        json.loads(confirmation.payload)
    )
    unconfirmed = Unconfirmed()
    unconfirmed.sent("w1", sos)
    unconfirmed.confirm(Inbound(confirmation.topic, confirmation.payload, False))
    assert len(unconfirmed) == 0
    assert confirmation_of(finding.model_copy(update={"code": FindingCode.WATER_LEAK})) == ()


@pytest.mark.integration
def test_sos_acknowledged_just_before_the_broker_is_killed_are_each_alerted_exactly_once(
    settings: Settings, broker: Mosquitto, registry: RegistryFile, services: dict[str, ServiceProcess]
) -> None:
    """Issue 19 row 3: Mosquitto acknowledges a message before it writes it to disk, so a kill -9 right
    after the acknowledgements loses what it holds, here the SOS queued for a gateway that is
    restarting; the device publishes each SOS again until it is confirmed."""
    services["alerting"].start()
    for name in ("gateway-events", "alarms"):
        services[name].start().wait_logged("mqtt connected")
    api = wait_for(lambda: _logged_in(settings), 30, "the alerting service")
    services["gateway-events"].stop()  # its session queues the SOS meanwhile
    unconfirmed = Unconfirmed()
    device = MqttClient(settings, client_id="test-delivery-device", persistent=False)
    device.subscribe(topics.CONFIRMATION_SUBSCRIPTION, unconfirmed.confirm)
    device.start()
    try:
        for seq, home in enumerate(registry.homes):
            wearable = home.devices[0].id
            payload = {"ts": utc_now().isoformat(), "seq": seq, "event": "sos"}
            sos = Outbound(topics.device(wearable, DeviceChannel.EVENT), json.dumps(payload).encode())
            assert device.publish_confirmed(sos)
            unconfirmed.sent(wearable, sos)
        broker.kill()
        broker.start()
        services["gateway-events"].start()

        def delivered() -> bool:
            for message in unconfirmed.due():
                device.publish(message)
            return len(unconfirmed) == 0

        wait_for(delivered, 120, f"every SOS confirmed ({len(unconfirmed)} not yet)", interval=0.2)
    finally:
        device.stop()
    alerts = api.get("/api/v1/alerts").json()
    assert sorted((a["home_id"], a["code"], a["finding_count"]) for a in alerts) == [
        (home.id, "sos", 1) for home in registry.homes
    ]


def _logged_in(settings: Settings) -> httpx.Client | None:
    try:
        return login(alerting_url(settings))
    except (httpx.HTTPError, AssertionError):
        return None
