"""Per-device fairness in the gateway: a flood is limited and counted, its SOS still passes, the logs stay small."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest

from carebed import topics
from carebed.mqtt import Inbound, Outbound, decode_batch
from carebed.schemas import DeadLetter, DeviceEntry, DeviceEvent, DeviceKind, Reading, RejectReason, utc_now
from carebed.settings import Settings
from gateway.fairness import Fairness, RejectionSampler, TokenBuckets
from gateway.service import CLOCK_CORRECTED, REJECTED, UNTOLD, Gateway

DIRECTORY = {
    "flood": DeviceEntry("home-1", DeviceKind.WEARABLE),
    "calm": DeviceEntry("home-2", DeviceKind.WEARABLE),
}


def test_a_bucket_lets_a_burst_through_then_its_rate() -> None:
    bucket = TokenBuckets(rate_per_s=1.0, burst=3)
    assert [bucket.take("d", 0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take("d", 0.5) is False  # half a token
    assert bucket.take("d", 1.0) is True
    assert bucket.take("other", 1.0) is True  # a share of its own


def test_a_flooding_devices_first_sos_and_its_first_after_a_quiet_spell_pass() -> None:
    fairness = Fairness(rate_per_s=1.0, burst=10, event_rate_per_s=0.1, event_burst=3)
    assert not any([fairness.admit("watch", False, 0.0) for _ in range(1000)][10:])  # telemetry/garbage flood
    assert fairness.admit("watch", True, 0.0)  # its SOS: events have their own share
    pressed = [fairness.admit("watch", True, 1.0) for _ in range(100)]  # a stuck button
    assert pressed[:2] == [True, True] and not any(pressed[2:])
    assert fairness.admit("watch", True, 1.0 + 30)  # after 30 s of quiet, the next press passes


def test_rejections_are_told_a_few_times_a_minute_then_summed() -> None:
    sampler = RejectionSampler(per_window=2, window_s=60)
    told = [sampler.note("d", "not_json", float(i)) for i in range(5)]
    assert [t.tell for t in told] == [True, True, False, False, False]
    assert [t.silenced for t in told] == [False, False, True, False, False]
    assert sampler.note("d", "invalid_payload", 5.0).tell  # another reason has its own share
    after = sampler.note("d", "not_json", 61.0)
    assert (after.tell, after.untold) == (True, 3)


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    """The gateway's handler without a broker: the registry is given, not read."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        gateway_device_burst=100,
        gateway_device_rate_per_s=0.01,  # slow enough that the test's own pace adds no token
    )
    gateway = Gateway(settings)
    gateway._directory = DIRECTORY
    gateway._refreshed_at = time.monotonic() + 3600
    return gateway


def message(device: str, channel: str, payload: object) -> Inbound:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Inbound(f"carebed/v1/devices/{device}/{channel}", raw, False)


def outputs(gateway: Gateway, inbound: Inbound) -> list[Outbound]:
    return list(gateway.handle(inbound))


def rejected(reason: RejectReason) -> float:
    return REJECTED.labels(reason.value)._value.get()


def test_a_flood_is_limited_counted_one_by_one_and_told_only_a_few_times(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    now = utc_now().isoformat()
    poison = b'{"ts":"9999-12-31T23:59:59-14:00","worn":true}'
    before = {reason: rejected(reason) for reason in RejectReason}
    untold_before = UNTOLD.labels(RejectReason.INVALID_PAYLOAD.value)._value.get()
    caplog.set_level(logging.WARNING, logger="gateway.service")
    published: list[Outbound] = []
    for _ in range(3000):
        published += outputs(gateway, message("flood", "telemetry", poison))
    for _ in range(500):
        published += outputs(gateway, message("flood", "telemetry", {"ts": now, "worn": True}))

    # Every message is accounted for, by reason: the share of the burst first, then the rest rate limited.
    invalid = rejected(RejectReason.INVALID_PAYLOAD) - before[RejectReason.INVALID_PAYLOAD]
    limited = rejected(RejectReason.RATE_LIMITED) - before[RejectReason.RATE_LIMITED]
    assert invalid == 3000 and limited >= 499
    readings = [out for out in published if out.topic == topics.READINGS]
    assert len(readings) + limited == 500
    # Told a few times a minute only: dead letters and log lines.
    dead = [out for out in published if out.topic.startswith(topics.PREFIX + "/deadletter/")]
    told = gateway.settings.gateway_rejections_told_per_min
    assert len(dead) <= 2 * told
    assert UNTOLD.labels(RejectReason.INVALID_PAYLOAD.value)._value.get() - untold_before == 3000 - told
    lines = [r for r in caplog.records if r.name == "gateway.service"]
    assert len(lines) <= 2 * (told + 1)
    assert not any(r.exc_info for r in lines)

    # The flooding device's own SOS passes, and so does the other home's telemetry.
    [sos] = outputs(gateway, message("flood", "event", {"ts": now, "event": "sos"}))
    [reading] = decode_batch(Reading, Inbound(sos.topic, b"[" + sos.payload + b"]", False))
    assert (sos.topic, reading.event) == (topics.EVENTS, DeviceEvent.SOS)
    [calm] = outputs(gateway, message("calm", "telemetry", {"ts": now, "worn": True}))
    assert calm.topic == topics.READINGS


def test_a_handler_fault_is_an_unprocessable_dead_letter(gateway: Gateway) -> None:
    before = rejected(RejectReason.UNPROCESSABLE)
    [out] = gateway.unprocessable(message("calm", "event", b"{}"), RecursionError("too deep"))
    dead = DeadLetter.model_validate_json(out.payload)
    assert (out.topic, dead.reason, dead.detail) == (
        topics.dead_letter("unprocessable"),
        RejectReason.UNPROCESSABLE,
        "could not be processed: RecursionError: too deep",
    )
    assert rejected(RejectReason.UNPROCESSABLE) == before + 1


def test_a_corrected_clock_is_counted(gateway: Gateway) -> None:
    ahead, unreadable = (CLOCK_CORRECTED.labels(why)._value.get() for why in ("ahead", "unreadable"))
    later = (utc_now() + timedelta(minutes=10)).isoformat()
    [fast] = outputs(gateway, message("calm", "event", {"ts": later, "event": "sos"}))
    [broken] = outputs(gateway, message("calm", "event", {"ts": 0, "event": "fall"}))
    assert {fast.topic, broken.topic} == {topics.EVENTS}
    assert CLOCK_CORRECTED.labels("ahead")._value.get() == ahead + 1
    assert CLOCK_CORRECTED.labels("unreadable")._value.get() == unreadable + 1
