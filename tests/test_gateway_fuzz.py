"""Hostile input at each adapter and at the gateway core: a Reading, a DeadLetter or nothing, never an exception.

Before, a timestamp past year 9999 or nesting past the parser's recursion limit raised out of the
core; the gateway left such a message unacknowledged and, after a thousand of them, the
broker sent the lane nothing more (issue 19, row 1).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from carebed.schemas import DeadLetter, DeviceEntry, DeviceKind, Reading, RejectReason, dump
from detector.alarms import alarms_of
from gateway.core import Normaliser

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
DIRECTORY = {
    "w1": DeviceEntry("home-1", DeviceKind.WEARABLE),
    "m1": DeviceEntry("home-1", DeviceKind.WATER_METER),
    "g1": DeviceEntry("home-1", DeviceKind.GAS_SENSOR),
    "l1": DeviceEntry("home-1", DeviceKind.LEAK_SENSOR),
    "hub-1": DeviceEntry("home-1", DeviceKind.HUB),
    "kitchen-leak": DeviceEntry("home-1", DeviceKind.LEAK_SENSOR, via="hub-1"),
    "sos-pendant": DeviceEntry("home-1", DeviceKind.WEARABLE, via="hub-1"),
    "0101010101010101": DeviceEntry("home-2", DeviceKind.WATER_METER, via="chirpstack"),
}
FIELDS = [
    "ts", "seq", "event", "online", "device_id", "heart_rate_bpm", "spo2_pct", "steps", "worn", "battery_pct",
    "battery_low", "volume_l", "flow_l_min", "leak", "ch4_lel_pct", "co_ppm", "volume_m3", "flow_m3_h",
    "gas_alarm", "co_alarm", "smoke", "water_leak", "gas", "carbon_monoxide", "battery", "action", "sos",
    "last_seen", "state",
]  # fmt: skip
ODD_TIMES = st.sampled_from(
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "2026-11-24T07:59:60Z",
        "2026-02-30T00:00:00Z",
        "2026-11-24T07:59:00",
        "2026-11-24",
        "+002026-11-24T07:59:00Z",
        "2026-11-24T07:59:00.1234567891234+08:00",
        "NaN",
    ]
)
TIMES = st.one_of(
    ODD_TIMES,
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    st.integers(min_value=-(10**20), max_value=10**20),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["sos", "fall", "leak", "tamper", "emergency", "online", "offline"]),
    TIMES,
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
OBJECTS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), VALUES, max_size=8)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


PAYLOADS = st.one_of(
    st.binary(max_size=200),
    OBJECTS.map(_encode),
    VALUES.map(_encode),
    st.integers(min_value=1, max_value=8000).map(lambda n: _nested(n, b"[", b"]")),
    st.integers(min_value=1, max_value=3000).map(lambda n: _nested(n, b'{"a":', b"}")[:-1] + b"1" + b"}" * n),
    st.integers(min_value=300, max_value=6000).map(lambda n: b'{"ts":"2026-11-24T07:59:00Z","seq":' + b"9" * n + b"}"),
)
NATIVE_TOPICS = st.builds(
    "carebed/v1/devices/{}/{}".format,
    st.sampled_from(["w1", "m1", "g1", "l1", "stranger"]),
    st.sampled_from(["telemetry", "event", "status", "selfie"]),
)
Z2M_TOPICS = st.builds(
    "carebed/v1/z2m/hub-1/{}{}".format,
    st.sampled_from(["kitchen-leak", "sos-pendant", "bridge", "stranger"]),
    st.sampled_from(["", "/availability", "/state", "/set"]),
)
POISON = [
    b'{"ts":"9999-12-31T23:59:59-14:00","event":"sos"}',
    b'{"ts":"9999-12-31T23:59:59-14:00","water_leak":true}',
    b'{"last_seen":1e300,"water_leak":true}',
    b'{"last_seen":-99999999999999999,"sos":true}',
    _nested(5000, b"[", b"]"),
    b'{"ts":"2026-11-24T07:59:00Z","seq":' + b"9" * 5000 + b"}",
]


def check(topic: str, payload: bytes) -> None:
    """Whatever comes out can also travel: a Reading and a DeadLetter serialise and read back."""
    result = Normaliser(timedelta(minutes=5)).normalise(topic, payload, NOW, DIRECTORY)
    assert result is None or isinstance(result, Reading | DeadLetter), result
    if isinstance(result, Reading):
        assert Reading.model_validate_json(dump(result)) == result
        alarms_of(result)  # the alarm lane retries what raises: nothing that passes the gateway may
    if isinstance(result, DeadLetter):
        assert result.detail and len(result.detail) <= 300, result.detail
        # The core's catch-all is a safety net: every fault found here has a reason of its own.
        assert result.reason is not RejectReason.UNPROCESSABLE, result.detail
        DeadLetter.model_validate_json(dump(result))


@settings(max_examples=300, deadline=None)
@given(topic=NATIVE_TOPICS, payload=PAYLOADS)
@example(topic="carebed/v1/devices/w1/event", payload=POISON[0])
@example(topic="carebed/v1/devices/w1/event", payload=POISON[4])
@example(topic="carebed/v1/devices/w1/telemetry", payload=POISON[5])
def test_native_adapter(topic: str, payload: bytes) -> None:
    check(topic, payload)


@settings(max_examples=300, deadline=None)
@given(topic=Z2M_TOPICS, payload=PAYLOADS)
@example(topic="carebed/v1/z2m/hub-1/kitchen-leak", payload=POISON[1])
@example(topic="carebed/v1/z2m/hub-1/kitchen-leak", payload=POISON[2])
@example(topic="carebed/v1/z2m/hub-1/sos-pendant", payload=POISON[3])
@example(topic="carebed/v1/z2m/hub-1/kitchen-leak/availability", payload=POISON[4])
def test_zigbee2mqtt_adapter(topic: str, payload: bytes) -> None:
    check(topic, payload)


UPLINK = "application/app-1/device/0101010101010101/event/up"


@settings(max_examples=300, deadline=None)
@given(
    decoded=OBJECTS | VALUES,
    time=st.none() | TIMES | VALUES,
    fcnt=st.none() | st.integers(min_value=-(10**30), max_value=10**30) | VALUES,
    dedup=st.uuids().map(str) | VALUES,
)
@example(decoded={"event": "sos"}, time="9999-12-31T23:59:59-14:00", fcnt=1, dedup="d-1")
@example(decoded={"volume_l": 1.0}, time="9999-12-31T23:59:59-14:00", fcnt=10**30, dedup="d-2")
def test_chirpstack_adapter(decoded: Any, time: Any, fcnt: Any, dedup: Any) -> None:
    uplink = {
        "deduplicationId": dedup,
        "time": time,
        "deviceInfo": {"devEui": "0101010101010101"},
        "fCnt": fcnt,
        "object": decoded,
    }
    check(UPLINK, _encode(uplink))


@settings(max_examples=200, deadline=None)
@given(topic=st.text(max_size=80) | NATIVE_TOPICS | Z2M_TOPICS | st.just(UPLINK), payload=PAYLOADS)
def test_gateway_core_on_any_topic(topic: str, payload: bytes) -> None:
    check(topic, payload)
