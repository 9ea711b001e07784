"""Unit tests of the gateway's pure core: every message becomes a Reading or a reasoned DeadLetter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carebed.schemas import DeadLetter, DeviceEntry, DeviceEvent, DeviceKind, Reading, RejectReason
from carebed.topics import DeviceChannel
from detector.alarms import alarms_of
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


@pytest.mark.parametrize("channel", ["event", "telemetry"])
def test_a_clock_too_far_ahead_is_corrected_to_the_receive_time_and_flagged(channel: str) -> None:
    """A watch 6 minutes fast (or a gateway 6 minutes slow): its SOS still counts, at the time it arrived."""
    payload = {"ts": "2026-11-24T08:06:00Z", "event": "sos"} if channel == "event" else {"ts": "2026-11-24T08:06:00Z"}
    result = run("w1", channel, payload)
    assert isinstance(result, Reading), result
    assert (result.ts, result.clock_corrected) == (NOW, True)
    assert (result.device_ts, result.device_clock_ahead_s) == ("2026-11-24T08:06:00+00:00", 360.0)
    assert result.clock_evidence() == {
        "clock_corrected": True,
        "device_ts": "2026-11-24T08:06:00+00:00",
        "device_clock_ahead_s": 360.0,
    }


def test_a_clock_within_the_skew_or_with_the_check_off_is_believed() -> None:
    within = run("w1", "event", {"ts": "2026-11-24T08:04:00Z", "event": "sos"})
    assert isinstance(within, Reading) and within.ts == NOW + timedelta(minutes=4) and not within.clock_corrected
    payload = json.dumps({"ts": "2026-11-24T09:00:00Z", "worn": True}).encode()
    unchecked = normalise("carebed/v1/devices/w1/telemetry", payload, skew=None)
    assert isinstance(unchecked, Reading) and unchecked.ts == datetime(2026, 11, 24, 9, tzinfo=UTC)
    assert unchecked.clock_evidence() == {}


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-14:00", 1764000000, "2026-11-24", "yesterday", None, {"$date": 1}])
def test_an_sos_is_never_refused_for_its_time(ts: object) -> None:
    """An unreadable time (out of range, a bare number, no offset, missing) on an event: taken at the receive time."""
    payload: dict[str, object] = {"event": "sos"} if ts is None else {"ts": ts, "event": "sos"}
    result = run("w1", "event", payload)
    assert isinstance(result, Reading), result
    assert (result.event, result.ts, result.clock_corrected) == (DeviceEvent.SOS, NOW, True)
    assert result.device_ts == (None if ts is None else ts if isinstance(ts, str) else json.dumps(ts))


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-14:00", 1764000000, 0, "2026-11-24", "2026-11-24T07:59:00"])
def test_telemetry_with_an_unreadable_time_is_refused(ts: object) -> None:
    """Strict RFC 3339 with an offset: a bare integer is not 1970, a date is not midnight."""
    dead = assert_rejected(run("w1", "telemetry", {"ts": ts, "worn": True}), RejectReason.INVALID_PAYLOAD)
    assert dead.detail.startswith("ts:")


@pytest.mark.parametrize(
    ("device", "payload", "field"),
    [
        ("m1", b'{"ts": "2026-11-24T07:59:00Z", "volume_l": Infinity}', "volume_l"),
        ("m1", b'{"ts": "2026-11-24T07:59:00Z", "volume_l": NaN}', "volume_l"),
        ("m1", b'{"ts": "2026-11-24T07:59:00Z", "volume_l": 1e999}', "volume_l"),
        ("m1", b'{"ts": "2026-11-24T07:59:00Z", "volume_l": "43210.5"}', "volume_l"),
        ("w1", b'{"ts": "2026-11-24T07:59:00Z", "worn": "yes"}', "worn"),
        ("w1", b'{"ts": "2026-11-24T07:59:00Z", "worn": 1}', "worn"),
        ("w1", b'{"ts": "2026-11-24T07:59:00Z", "steps": 12.0}', "steps"),
        ("w1", b'{"ts": "2026-11-24T07:59:00Z", "steps": 1e30}', "steps"),
        ("w1", b'{"ts": "2026-11-24T07:59:00Z", "seq": true}', "seq"),
        ("w1", b'{"ts": "2026-11-24T07:59:00Z", "seq": 100000000000000000000}', "seq"),
        ("w1", b'{"ts": "2026-11-24T07:59:00Z", "heart_rate_bpm": true}', "heart_rate_bpm"),
        ("w1", b'{"online": "false"}', "online"),
    ],
)
def test_numbers_are_finite_numbers_and_booleans_are_booleans(device: str, payload: bytes, field: str) -> None:
    channel = "status" if b"online" in payload else "telemetry"
    dead = assert_rejected(normalise(f"carebed/v1/devices/{device}/{channel}", payload), RejectReason.INVALID_PAYLOAD)
    assert dead.detail.startswith(f"{field}:"), dead.detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 8000 + b"]" * 8000, RejectReason.NOT_JSON),  # deeper than the parser's recursion limit
        (b'{"ts": "2026-11-24T07:59:00Z", "seq": ' + b"7" * 5000 + b"}", RejectReason.NOT_JSON),
    ],
)
def test_poison_payloads_are_dead_letters(payload: bytes, reason: RejectReason) -> None:
    """Each of these raised out of the core before; a raised exception left the message unacknowledged."""
    dead = assert_rejected(normalise("carebed/v1/devices/w1/event", payload), reason)
    assert "Traceback" not in dead.detail and len(dead.detail) <= 300


def test_whatever_an_adapter_raises_is_the_messages_dead_letter() -> None:
    normaliser = Normaliser(SKEW)

    class Broken:
        name = "broken"
        subscriptions = ("carebed/v1/devices/#",)

        def matches(self, topic: str) -> bool:
            return True

        def sender(self, topic: str) -> str:
            return "w1"

        def translate(self, topic: str, payload: bytes, received_at: datetime) -> None:
            raise KeyError("a bug")

    normaliser.adapters = (Broken(),)
    dead = assert_rejected(
        normaliser.normalise("carebed/v1/devices/w1/event", b"{}", NOW, DIRECTORY), RejectReason.UNPROCESSABLE
    )
    assert dead.detail == "could not be processed: KeyError: 'a bug'"


@given(topic=st.text(max_size=60), payload=st.binary(max_size=300))
def test_any_input_gives_a_reading_or_a_reason(topic: str, payload: bytes) -> None:
    result = normalise(topic, payload)
    assert result is None or isinstance(result, Reading | DeadLetter)
    if isinstance(result, DeadLetter):
        assert result.detail


def test_the_sos_finding_tells_the_operator_how_far_ahead_the_watch_was() -> None:
    reading = run("w1", "event", {"ts": "2026-11-24T16:07:30+08:00", "event": "sos"})
    assert isinstance(reading, Reading)
    [finding] = alarms_of(reading)
    assert finding.ts == NOW
    assert finding.evidence == {
        "event": "sos",
        "seq": None,
        "clock_corrected": True,
        "device_ts": "2026-11-24T08:07:30+00:00",
        "device_clock_ahead_s": 450.0,
    }


@pytest.mark.parametrize("ts", ["2026-11-24T17:00:00+08:00", "9999-12-31T23:59:59-14:00"])
def test_a_corrected_sos_received_again_later_keeps_its_finding_id(ts: str) -> None:
    """A redelivery or a device's resend must fold into the first press, not be a second alert."""
    raw = json.dumps({"ts": ts, "seq": 7, "event": "sos"}).encode()
    findings = []
    for received_at in (NOW, NOW + timedelta(minutes=3)):
        reading = Normaliser(SKEW).normalise("carebed/v1/devices/w1/event", raw, received_at, DIRECTORY)
        assert isinstance(reading, Reading) and reading.clock_corrected
        findings.extend(alarms_of(reading))
    first, again = findings
    assert first.ts != again.ts, "each copy is taken at its own receive time"
    assert first.id == again.id
