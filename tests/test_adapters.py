"""Vendor adapters on captured payload shapes (tests/fixtures/): zigbee2mqtt and ChirpStack v4."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carebed.schemas import DeadLetter, DeviceEntry, DeviceEvent, DeviceKind, Reading, RejectReason
from carebed.topics import DeviceChannel
from gateway.core import Normaliser

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
DIRECTORY = {
    "hub-1": DeviceEntry("home-1", DeviceKind.HUB),
    "kitchen-leak": DeviceEntry("home-1", DeviceKind.LEAK_SENSOR, via="hub-1"),
    "kitchen-gas": DeviceEntry("home-1", DeviceKind.GAS_SENSOR, via="hub-1"),
    "sos-pendant": DeviceEntry("home-1", DeviceKind.WEARABLE, via="hub-1"),
    "0101010101010101": DeviceEntry("home-2", DeviceKind.WATER_METER, via="chirpstack"),
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def reading(result: Reading | DeadLetter | None) -> Reading:
    assert isinstance(result, Reading), result
    return result


def z2m(normaliser: Normaliser, device: str, name: str, hub: str = "hub-1") -> Reading | DeadLetter | None:
    return normaliser.normalise(f"carebed/v1/z2m/{hub}/{device}", fixture(f"zigbee2mqtt/{name}"), NOW, DIRECTORY)


@pytest.mark.parametrize(
    ("device", "name", "expected"),
    [
        ("kitchen-leak", "water_leak.json", {"leak": True, "battery_pct": 100, "battery_low": False}),
        ("kitchen-gas", "gas.json", {"gas_alarm": True, "battery_low": False}),
        ("kitchen-gas", "carbon_monoxide.json", {"co_alarm": True, "battery_pct": 90}),
        ("kitchen-gas", "smoke.json", {"smoke": True, "battery_pct": 100}),
    ],
)
def test_zigbee2mqtt_states_become_native_telemetry(device: str, name: str, expected: dict[str, Any]) -> None:
    result = reading(z2m(Normaliser(None), device, name))
    assert (result.home_id, result.device_id, result.channel) == ("home-1", device, DeviceChannel.TELEMETRY)
    assert result.ts == NOW
    assert {k: getattr(result, k) for k in expected} == expected


@pytest.mark.parametrize("name", ["action_emergency.json", "sos.json"])
def test_zigbee2mqtt_emergency_buttons_are_sos_events(name: str) -> None:
    result = reading(z2m(Normaliser(None), "sos-pendant", name))
    assert (result.channel, result.event) == (DeviceChannel.EVENT, DeviceEvent.SOS)


def test_zigbee2mqtt_last_seen_is_the_device_time() -> None:
    result = reading(z2m(Normaliser(None), "kitchen-leak", "water_leak_last_seen.json"))
    assert result.ts == datetime(2026, 11, 23, 23, 58, 12, tzinfo=UTC)
    assert result.leak is False


def test_zigbee2mqtt_housekeeping_and_requests_pass_nothing_on() -> None:
    normaliser = Normaliser(None)
    assert z2m(normaliser, "kitchen-leak", "housekeeping_only.json") is None
    assert normaliser.normalise("carebed/v1/z2m/hub-1/kitchen-leak/set", b'{"state":"ON"}', NOW, DIRECTORY) is None
    assert normaliser.normalise("carebed/v1/z2m/hub-1/bridge/devices", b"[]", NOW, DIRECTORY) is None


@pytest.mark.parametrize("payload", [b'{"state":"offline"}', b"offline"])
def test_zigbee2mqtt_availability_new_and_legacy(payload: bytes) -> None:
    topic = "carebed/v1/z2m/hub-1/kitchen-leak/availability"
    result = reading(Normaliser(None).normalise(topic, payload, NOW, DIRECTORY))
    assert (result.channel, result.online, result.device_id) == (DeviceChannel.STATUS, False, "kitchen-leak")


def test_zigbee2mqtt_bridge_state_is_the_hubs_status() -> None:
    result = reading(
        Normaliser(None).normalise("carebed/v1/z2m/hub-1/bridge/state", b'{"state":"online"}', NOW, DIRECTORY)
    )
    assert (result.device_id, result.device_kind, result.online) == ("hub-1", DeviceKind.HUB, True)


def test_a_hub_cannot_speak_for_a_device_that_is_not_attached_to_it() -> None:
    result = z2m(Normaliser(None), "kitchen-leak", "water_leak.json", hub="hub-2")
    assert isinstance(result, DeadLetter) and result.reason is RejectReason.WRONG_PATH


def test_a_state_that_does_not_fit_the_device_kind_is_rejected_by_the_native_schema() -> None:
    result = z2m(Normaliser(None), "kitchen-leak", "gas.json")
    assert isinstance(result, DeadLetter) and result.reason is RejectReason.INVALID_PAYLOAD
    assert "leak" in result.detail


UPLINK_TOPIC = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up"


def uplink(**changes: Any) -> bytes:
    data = json.loads(fixture("chirpstack/uplink_water_meter.json"))
    data.update(changes)
    return json.dumps(data).encode()


def test_chirpstack_uplink_becomes_a_meter_reading() -> None:
    result = reading(Normaliser(None).normalise(UPLINK_TOPIC, uplink(), NOW, DIRECTORY))
    assert (result.home_id, result.device_kind, result.seq) == ("home-2", DeviceKind.WATER_METER, 10)
    assert (result.water_volume_l, result.leak, result.battery_pct) == (12345.6, False, 87)
    assert result.ts == datetime(2026, 11, 24, 7, 59, 15, 775023, tzinfo=UTC)


def test_chirpstack_duplicates_are_dropped_and_frame_gaps_counted() -> None:
    normaliser = Normaliser(None)
    assert isinstance(normaliser.normalise(UPLINK_TOPIC, uplink(), NOW, DIRECTORY), Reading)
    assert normaliser.normalise(UPLINK_TOPIC, uplink(), NOW, DIRECTORY) is None
    later = uplink(deduplicationId="9c5e2f3a-0000-4000-8000-000000000001", fCnt=14)
    assert isinstance(normaliser.normalise(UPLINK_TOPIC, later, NOW, DIRECTORY), Reading)
    reset = uplink(deduplicationId="9c5e2f3a-0000-4000-8000-000000000002", fCnt=0)
    assert isinstance(normaliser.normalise(UPLINK_TOPIC, reset, NOW, DIRECTORY), Reading)
    assert (normaliser.chirpstack.duplicates, normaliser.chirpstack.frame_gaps) == (1, 3)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"deviceInfo": {"devEui": "0202020202020202"}}, RejectReason.DEVICE_MISMATCH),
        ({"object": None}, RejectReason.INVALID_PAYLOAD),
        ({"object": {"volume_l": -5}}, RejectReason.INVALID_PAYLOAD),
        ({"deduplicationId": ""}, RejectReason.INVALID_PAYLOAD),
    ],
)
def test_chirpstack_faults_are_named(changes: dict[str, Any], reason: RejectReason) -> None:
    result = Normaliser(None).normalise(UPLINK_TOPIC, uplink(**changes), NOW, DIRECTORY)
    assert isinstance(result, DeadLetter) and result.reason is reason, result
