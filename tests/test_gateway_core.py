"""Unit tests of the gateway's pure core: every message becomes a Reading or a reasoned DeadLetter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carebed.schemas import DeadLetter, DeviceEntry, DeviceEvent, DeviceKind, Reading, RejectReason
from carebed.topics import DeviceChannel
from gateway.core import MAX_PAYLOAD_BYTES, Normaliser

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
DIRECTORY = {
    "w1": DeviceEntry("home-1", DeviceKind.WEARABLE),
    "m1": DeviceEntry("home-1", DeviceKind.WATER_METER),
    "g1": DeviceEntry("home-1", DeviceKind.GAS_SENSOR),
}
SKEW = timedelta(minutes=5)


def normalise(topic: str, payload: bytes, skew: timedelta | None = SKEW) -> Reading | DeadLetter | None:
    return Normaliser(skew).normalise(topic, payload, NOW, DIRECTORY)


def run(device: str, channel: str, payload: object) -> Reading | DeadLetter | None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return normalise(f"carebed/v1/devices/{device}/{channel}", raw)


def assert_rejected(result: Reading | DeadLetter | None, reason: RejectReason) -> DeadLetter:
    assert isinstance(result, DeadLetter), result
    assert result.reason is reason, result.detail
    return result


def test_wearable_telemetry_is_resolved_to_its_home_in_utc() -> None:
    result = run("w1", "telemetry", {"ts": "2026-11-24T15:59:00+08:00", "seq": 4, "heart_rate_bpm": 71, "worn": True})
    assert isinstance(result, Reading)
    assert (result.home_id, result.device_kind, result.channel) == (
        "home-1",
        DeviceKind.WEARABLE,
        DeviceChannel.TELEMETRY,
    )
    assert result.ts == datetime(2026, 11, 24, 7, 59, tzinfo=UTC)
    assert (result.heart_rate_bpm, result.worn, result.seq) == (71, True, 4)


def test_meter_fields_get_unambiguous_names() -> None:
    water = run("m1", "telemetry", {"ts": "2026-11-24T07:59:00Z", "volume_l": 1234.5, "flow_l_min": 6})
    gas = run("g1", "telemetry", {"ts": "2026-11-24T07:59:00Z", "volume_m3": 12.5, "ch4_lel_pct": 1.5})
    assert isinstance(water, Reading) and isinstance(gas, Reading)
    assert (water.water_volume_l, water.water_flow_l_min) == (1234.5, 6)
    assert (gas.gas_volume_m3, gas.ch4_lel_pct) == (12.5, 1.5)


def test_sos_event() -> None:
    result = run("w1", "event", {"ts": "2026-11-24T07:59:30Z", "event": "sos", "seq": 9})
    assert isinstance(result, Reading) and result.event is DeviceEvent.SOS


def test_last_will_without_time_takes_the_gateway_clock() -> None:
    result = run("w1", "status", {"online": False})
    assert isinstance(result, Reading)
    assert (result.online, result.ts) == (False, NOW)


def test_unknown_device_is_rejected() -> None:
    assert_rejected(run("stranger", "telemetry", {"ts": "2026-11-24T07:59:00Z"}), RejectReason.UNKNOWN_DEVICE)


def test_payload_naming_another_device_is_rejected() -> None:
    payload = {"device_id": "w2", "ts": "2026-11-24T07:59:00Z", "event": "sos"}
    assert_rejected(run("w1", "event", payload), RejectReason.DEVICE_MISMATCH)


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe", b"[1, 2]", b"42"])
def test_non_objects_are_rejected(raw: bytes) -> None:
    assert_rejected(run("w1", "telemetry", raw), RejectReason.NOT_JSON)


def test_unknown_field_is_named_in_the_reason() -> None:
    dead = assert_rejected(
        run("w1", "telemetry", {"ts": "2026-11-24T07:59:00Z", "heartrate": 70}), RejectReason.INVALID_PAYLOAD
    )
    assert "heartrate" in dead.detail


def test_naive_timestamp_is_rejected() -> None:
    dead = assert_rejected(run("w1", "telemetry", {"ts": "2026-11-24T07:59:00"}), RejectReason.INVALID_PAYLOAD)
    assert "ts" in dead.detail


def test_out_of_range_value_is_rejected() -> None:
    dead = assert_rejected(
        run("g1", "telemetry", {"ts": "2026-11-24T07:59:00Z", "ch4_lel_pct": 140}), RejectReason.INVALID_PAYLOAD
    )
    assert "ch4_lel_pct" in dead.detail


def test_event_the_device_kind_cannot_send_is_rejected() -> None:
    assert_rejected(run("g1", "event", {"ts": "2026-11-24T07:59:00Z", "event": "fall"}), RejectReason.INVALID_PAYLOAD)


def test_bad_topic_and_oversized_payload_are_rejected() -> None:
    assert_rejected(normalise("carebed/v1/devices/w1/selfie", b"{}"), RejectReason.BAD_TOPIC)
    assert_rejected(normalise("somewhere/else", b"{}"), RejectReason.BAD_TOPIC)
    assert_rejected(run("w1", "telemetry", b" " * (MAX_PAYLOAD_BYTES + 1)), RejectReason.TOO_LARGE)


def test_future_timestamp_is_rejected_unless_the_check_is_off() -> None:
    payload = json.dumps({"ts": "2026-11-24T09:00:00Z", "worn": True}).encode()
    topic = "carebed/v1/devices/w1/telemetry"
    assert_rejected(normalise(topic, payload), RejectReason.FUTURE_TIMESTAMP)
    assert isinstance(normalise(topic, payload, skew=None), Reading)


@given(topic=st.text(max_size=60), payload=st.binary(max_size=300))
def test_any_input_gives_a_reading_or_a_reason(topic: str, payload: bytes) -> None:
    result = normalise(topic, payload)
    assert result is None or isinstance(result, Reading | DeadLetter)
    if isinstance(result, DeadLetter):
        assert result.detail
