"""The detector service against a real Mosquitto: operator feedback applied, learning kept across a restart,
checkpoints written by a forked child while the service goes on."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from carebed import topics
from carebed.mqtt import MqttClient, Outbound
from carebed.schemas import (
    WELFARE_CODES,
    DeviceKind,
    Feedback,
    FeedbackKind,
    Finding,
    FindingCode,
    Reading,
    dump,
)
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from detector.checkpoint import Checkpoints
from detector.service import Detector
from tests.support import Observer, wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def day_then_silence(home_id: str) -> list[Reading]:
    """Two active hours, then 14 hours in which the devices report but nobody moves or runs water."""
    readings = []
    for n in range(1, 16 * 12 + 1):
        ts = T0 + n * timedelta(minutes=5)
        steps = 40 * min(n, 24)
        for kind, values in (
            (DeviceKind.WEARABLE, {"steps": steps, "worn": True, "heart_rate_bpm": 70.0}),
            (DeviceKind.WATER_METER, {"water_volume_l": 1000.0, "water_flow_l_min": 0.0}),
        ):
            readings.append(
                Reading(
                    home_id=home_id,
                    device_id=f"{home_id}-{kind.value}",
                    device_kind=kind,
                    channel=DeviceChannel.TELEMETRY,
                    ts=ts,
                    received_at=ts,
                    **values,
                )
            )
    return readings


@pytest.fixture
def detector(settings: Settings) -> Iterator[Detector]:
    service = Detector(settings)
    service.start()
    yield service
    service.stop()


def test_away_feedback_over_the_broker_suppresses_welfare_findings_and_survives_a_restart(
    settings: Settings, detector: Detector, device: MqttClient
) -> None:
    findings = Observer(settings, topics.FINDINGS_SUBSCRIPTION)
    findings.client.start()
    until = T0 + timedelta(days=2)
    away = Feedback(id="fb-1", home_id="home-away", kind=FeedbackKind.AWAY, ts=T0, until=until)
    device.publish(Outbound(topics.feedback("home-away"), dump(away)))
    wait_for(
        lambda: "home-away" in detector.engine.patterns.homes or None, 10, "the detector to apply the away feedback"
    )
    for home_id in ("home-away", "home-here"):
        for reading in day_then_silence(home_id):
            device.publish(Outbound(topics.READINGS, dump(reading), batched=True))

    found = Finding.model_validate_json(findings.next(timeout=30).payload)
    assert (found.home_id, found.code) == ("home-here", FindingCode.INACTIVITY)
    assert found.evidence["basis"] == "fixed_floor"
    received = [found]
    while not findings.messages.empty():
        received.append(Finding.model_validate_json(findings.messages.get().payload))
    assert [f for f in received if f.home_id == "home-away" and f.code in WELFARE_CODES] == []

    learned = bytes(detector.engine.patterns.homes["home-here"].any.counts)
    assert any(learned), "the silence taught the model something"
    detector.stop()
    restarted = Detector(settings)
    homes = restarted.engine.patterns.homes
    assert homes["home-away"].away_until == until
    assert bytes(homes["home-here"].any.counts) == learned
    assert homes["home-here"].silence_alerted, "the restored detector does not raise the same silence twice"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def restored_homes(settings: Settings) -> set[str]:
    """The homes in the checkpoint on disk now, read as a restarted detector would."""
    checkpoints = Checkpoints(settings.data_dir / "detector" / "state.pickle", 1.0, threading.Lock())
    engine = checkpoints.restore()
    return set(engine.patterns.homes) if engine else set()


class SlowToPickle:
    """Part of a state that takes a second to pickle, as 10k homes' state does."""

    def __reduce__(self) -> tuple[type[SlowToPickle], tuple[()]]:
        time.sleep(1.0)
        return (SlowToPickle, ())


def test_feedback_is_on_disk_before_it_is_acknowledged(
    settings: Settings, detector: Detector, device: MqttClient
) -> None:
    """Read while the detector still runs: what a SIGKILL at this moment would leave for the next start."""
    detector.engine.slow_to_pickle = SlowToPickle()  # type: ignore[attr-defined]
    applied = metric("carebed_detector_feedback_total", kind="back")
    device.publish(
        Outbound(
            topics.feedback("home-back"), dump(Feedback(id="fb-2", home_id="home-back", kind=FeedbackKind.BACK, ts=T0))
        )
    )
    wait_for(
        lambda: metric("carebed_detector_feedback_total", kind="back") > applied, 30, "the feedback to be acknowledged"
    )
    assert "home-back" in restored_homes(settings)


def test_periodic_checkpoints_come_from_a_child_forked_at_bulk_priority_and_a_failed_one_is_counted_and_retried(
    settings: Settings, device: MqttClient
) -> None:
    failures = metric("carebed_detector_checkpoint_failures_total")
    written = metric("carebed_detector_checkpoint_seconds_count")
    detector = Detector(settings.model_copy(update={"detector_checkpoint_s": 0.2}))
    state = settings.data_dir / "detector" / "state.pickle"
    state.mkdir(parents=True)  # a directory where the file goes: every write fails at its rename
    detector.start()
    try:
        forker = detector.checkpoints._thread.native_id
        assert forker is not None
        bulk = min(19, os.getpriority(os.PRIO_PROCESS, 0) + settings.bulk_nice)
        wait_for(lambda: os.getpriority(os.PRIO_PROCESS, forker) == bulk, 10, "the forking thread at bulk priority")
        for reading in day_then_silence("home-periodic")[:10]:
            device.publish(Outbound(topics.READINGS, dump(reading), batched=True))
        wait_for(lambda: "home-periodic" in detector.engine.patterns.homes, 30, "the readings to be processed")
        wait_for(lambda: metric("carebed_detector_checkpoint_failures_total") > failures, 30, "a failed checkpoint")
        assert metric("carebed_detector_checkpoint_seconds_count") == written
        state.rmdir()
        wait_for(lambda: "home-periodic" in restored_homes(settings), 30, "a checkpoint after the failure")
        # The child renames the file before the service reaps it and counts the write.
        wait_for(lambda: metric("carebed_detector_checkpoint_seconds_count") > written, 30, "the write to be counted")
        assert not list(state.parent.glob("*.tmp")), "no half-written file left behind"
    finally:
        detector.stop()


def test_a_reading_the_engine_cannot_judge_is_counted_and_the_rest_of_its_batch_goes_on(
    detector: Detector, device: MqttClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retried in place, one bug would hold every home's detection; dropped silently, it would vanish."""
    learn = detector.engine.learn

    def broken_for_one_home(reading: Reading) -> list[Finding]:
        if reading.home_id == "home-bug":
            raise ZeroDivisionError("a bug that only this home's data meets")
        return learn(reading)

    monkeypatch.setattr(detector.engine, "learn", broken_for_one_home)
    unjudged = metric("carebed_detector_unjudged_readings_total")
    batch = [*day_then_silence("home-bug")[:4], *day_then_silence("home-fine")[:4]]
    device.publish(Outbound(topics.READINGS, b"[" + b",".join(dump(r) for r in batch) + b"]"))
    wait_for(lambda: "home-fine" in detector.engine.patterns.homes, 30, "the rest of the batch to be judged")
    wait_for(lambda: metric("carebed_detector_unjudged_readings_total") == unjudged + 4, 30, "the four to be counted")
    assert "home-bug" not in detector.engine.patterns.homes
