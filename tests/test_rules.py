"""Unit tests of the detector's alarms and rules, in event time."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

from carebed.schemas import DeviceEvent, DeviceKind, Finding, FindingCode, Reading, Severity
from carebed.topics import DeviceChannel
from detector.alarms import alarms_of
from detector.rules import RuleConfig, RuleEngine

T0 = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
ALARM_EVENTS = (DeviceEvent.SOS, DeviceEvent.FALL)
KIND = {"w": DeviceKind.WEARABLE, "m": DeviceKind.WATER_METER, "g": DeviceKind.GAS_SENSOR}


def reading(device: str, minute: float, channel: DeviceChannel = DeviceChannel.TELEMETRY, **values: Any) -> Reading:
    ts = T0 + timedelta(minutes=minute)
    return Reading(
        home_id="home-1",
        device_id=device,
        device_kind=KIND[device[0]],
        channel=channel,
        ts=ts,
        received_at=ts,
        **values,
    )


def run(engine: RuleEngine, readings: list[Reading]) -> list[Finding]:
    return [finding for r in readings for finding in engine.process(r)]


def test_sos_and_falls_raise_a_critical_finding_each_with_a_stable_id_and_no_state() -> None:
    presses = [reading("w1", m, DeviceChannel.EVENT, event=event, seq=m) for m, event in enumerate(ALARM_EVENTS)]
    first = [finding for press in presses for finding in alarms_of(press)]
    assert [(f.code, f.severity, f.ts) for f in first] == [
        (FindingCode.SOS, Severity.CRITICAL, T0),
        (FindingCode.FALL, Severity.CRITICAL, T0 + timedelta(minutes=1)),
    ]
    assert [f.id for press in presses for f in alarms_of(press)] == [f.id for f in first]
    # A second press a minute later is a second alarm, not a copy of the first.
    assert alarms_of(reading("w1", 2, DeviceChannel.EVENT, event=DeviceEvent.SOS))[0].id != first[0].id


def test_the_rules_leave_sos_and_falls_to_the_alarm_lane_and_nothing_else_is_an_alarm() -> None:
    events = [reading("w1", m, DeviceChannel.EVENT, event=event) for m, event in enumerate(DeviceEvent)]
    findings = run(RuleEngine(RuleConfig()), events)
    assert [f.code for f in findings] == [FindingCode.WATER_LEAK]
    assert [f.code for e in events for f in alarms_of(e)] == [FindingCode.SOS, FindingCode.FALL]
    assert alarms_of(reading("w1", 9, steps=100, worn=True)) == []


def test_gas_alarm_fires_once_per_episode() -> None:
    levels = [2, 12, 15, 3, 11]
    findings = run(RuleEngine(RuleConfig()), [reading("g1", i, ch4_lel_pct=v) for i, v in enumerate(levels)])
    assert [(f.code, f.evidence["ch4_lel_pct"]) for f in findings] == [
        (FindingCode.GAS_ALARM, 12),
        (FindingCode.GAS_ALARM, 11),
    ]


def test_co_alarm_follows_the_time_weighted_levels() -> None:
    engine = RuleEngine(RuleConfig())
    assert run(engine, [reading("g1", m, co_ppm=60) for m in range(0, 60, 5)]) == []
    [finding] = run(engine, [reading("g1", 60, co_ppm=60)])
    assert finding.code is FindingCode.CO_ALARM
    assert finding.ts == T0
    assert run(RuleEngine(RuleConfig()), [reading("g1", 0, co_ppm=320)])[0].evidence["level_ppm"] == 300


def test_water_leak_flag_fires_on_the_rising_edge_only() -> None:
    flags = [False, True, True, False, True]
    findings = run(RuleEngine(RuleConfig()), [reading("m1", i, leak=v) for i, v in enumerate(flags)])
    assert [f.code for f in findings] == [FindingCode.WATER_LEAK, FindingCode.WATER_LEAK]


def offline(findings: list[Finding]) -> list[tuple[str | None, int]]:
    return [(f.device_id, int(f.evidence["silent_min"])) for f in findings if f.code is FindingCode.DEVICE_OFFLINE]


def test_a_device_is_offline_when_overdue_for_its_own_interval_judged_in_event_time() -> None:
    """A 5-minute meter is offline after 2 h; an hourly gas meter is not late then, but is after 4 of its hours."""
    engine = RuleEngine(RuleConfig())
    readings = [reading("m1", m, water_volume_l=10) for m in range(0, 120, 5)]
    readings += [reading("g1", m, gas_volume_m3=1.0) for m in range(0, 601, 60)]
    readings += [reading("w1", m, worn=True) for m in range(0, 24 * 60, 5)]
    findings = run(engine, sorted(readings, key=lambda r: r.ts))
    sweep = RuleConfig().offline_after.total_seconds() / 60 / 10  # silences are looked for this often
    assert [device for device, _ in offline(findings)] == ["m1", "g1"]
    silences = [silent for _, silent in offline(findings)]
    assert all(limit <= silent < limit + sweep for silent, limit in zip(silences, (120, 240), strict=True))
    assert {f.technical for f in findings} == {True}
    by_device = {f.device_id: f for f in findings}
    assert by_device["m1"].ts == T0 + timedelta(minutes=115)
    assert by_device["m1"].summary.startswith("The water meter has sent nothing for 2 h ")
    assert by_device["m1"].summary.endswith("(it usually reports every 5 min)")
    assert by_device["g1"].summary.endswith("(it usually reports every 1 h)")
    assert run(engine, [reading("m1", 24 * 60 + 1, water_volume_l=11)]) == []


def watch_known_for_days() -> RuleEngine:
    """An engine that has heard the watch for four days, always on: its habits are known (it has none)."""
    engine = RuleEngine(RuleConfig())
    run(engine, [reading("w1", m - 4 * 24 * 60, worn=True) for m in range(0, 4 * 24 * 60, 5)])
    return engine


def test_silences_with_an_ordinary_reason_are_not_a_fault_until_they_last() -> None:
    """A watch off the wrist, or silent while nothing at home is used (out with a hub-linked watch), is not offline."""
    engine = watch_known_for_days()
    readings = [reading("w1", m, worn=m < 60) for m in range(0, 65, 5)]
    readings += [reading("m1", m, water_volume_l=10 + (m > 300) * 20) for m in range(0, 12 * 60, 5)]
    assert offline(run(engine, sorted(readings, key=lambda r: r.ts))) == []
    engine = watch_known_for_days()
    readings = [reading("w1", m, worn=True) for m in range(0, 65, 5)]
    readings += [reading("m1", m, water_volume_l=10 + (m >= 400) * 8) for m in range(0, 8 * 60, 5)]
    [(device, silent)] = offline(run(engine, sorted(readings, key=lambda r: r.ts)))
    assert device == "w1" and 370 <= silent < 382  # half an hour after the first use at home (400 - 60 + 30)


def test_a_watch_silent_by_habit_is_not_offline_but_silent_at_another_time_is() -> None:
    """Switched off every night from 22:00 to 07:00 (UTC here), flushed at night: no alert; dead at 10:00: one."""
    engine = RuleEngine(RuleConfig())
    day = 24 * 60
    watch = [reading("w1", m, worn=True) for m in range(0, 8 * day, 5) if 7 * 60 <= m % day < 22 * 60]
    watch = [r for r in watch if r.ts < T0 + timedelta(minutes=7 * day + 10 * 60)]
    meter = [reading("m1", m, water_volume_l=100 + 6 * (m // 180)) for m in range(0, 8 * day, 5)]
    findings = run(engine, sorted(watch + meter, key=lambda r: r.ts))
    assert [(f.device_id, f.ts) for f in findings] == [("w1", T0 + timedelta(minutes=7 * day + 10 * 60 - 5))]


def test_a_meter_that_uploads_its_buffer_every_few_hours_is_offline_only_when_a_batch_is_overdue() -> None:
    """Readings every 15 min arrive in batches every 4 h; then the meter stops for a day."""
    engine = RuleEngine(RuleConfig())
    findings = []
    for upload in range(240, 3 * 24 * 60, 240):
        findings += engine.advance(T0 + timedelta(minutes=upload - 1))
        findings += run(engine, [reading("m1", m, water_volume_l=10) for m in range(upload - 240 + 15, upload + 1, 15)])
    assert findings == []
    last = T0 + timedelta(minutes=3 * 24 * 60 - 240)
    for minute in range(3 * 24 * 60, 4 * 24 * 60, 5):
        findings += engine.advance(T0 + timedelta(minutes=minute))
    [offline_finding] = findings
    assert offline_finding.ts == last and timedelta(hours=4) < offline_finding.detected_at - last <= timedelta(hours=6)


def test_a_silence_of_days_is_told_in_days() -> None:
    engine = RuleEngine(RuleConfig())
    run(engine, [reading("m1", m, water_volume_l=10) for m in range(0, 60, 5)])
    findings = run(engine, [reading("g1", 60 + 3 * 24 * 60 + 5, gas_volume_m3=1.0)])
    expected = "The water meter has sent nothing for 3 days (it usually reports every 5 min)"
    assert [f.summary for f in findings] == [expected]


def test_an_offline_last_will_does_not_count_as_a_sign_of_life() -> None:
    engine = RuleEngine(RuleConfig(offline_after=timedelta(minutes=30)))
    engine.process(reading("m1", 0, water_volume_l=10))
    engine.process(reading("m1", 20, DeviceChannel.STATUS, online=False))
    findings = run(engine, [reading("w1", m, worn=True) for m in range(0, 35)])
    assert [f.device_id for f in findings] == ["m1"]


def test_replay_after_a_checkpoint_gives_the_same_findings() -> None:
    readings = [
        reading("g1", m, ch4_lel_pct=20 if m % 17 == 0 else 1, co_ppm=120 if 30 <= m < 50 else 1) for m in range(90)
    ]
    readings += [reading("m1", 45, DeviceChannel.EVENT, event=DeviceEvent.LEAK)]
    straight = run(RuleEngine(RuleConfig()), readings)
    engine = RuleEngine(RuleConfig())
    head = run(engine, readings[:40])
    restored: RuleEngine = pickle.loads(pickle.dumps(engine))
    assert head + run(restored, readings[40:]) == straight
    assert {f.code for f in straight} == {FindingCode.GAS_ALARM, FindingCode.CO_ALARM, FindingCode.WATER_LEAK}


def test_a_detectors_own_alarm_flags_fire_once_per_episode() -> None:
    flags = [False, True, True, False, True]
    engine = RuleEngine(RuleConfig())
    smoke = run(engine, [reading("g1", i, smoke=v) for i, v in enumerate(flags)])
    co = run(engine, [reading("g1", 10 + i, co_alarm=v) for i, v in enumerate(flags)])
    assert [f.code for f in smoke] == [FindingCode.SMOKE_ALARM] * 2
    assert [f.code for f in co] == [FindingCode.CO_ALARM] * 2
    assert all(f.severity is Severity.CRITICAL for f in smoke + co)


def test_an_outage_does_not_teach_an_upload_period() -> None:
    """A meter back on time after 5 h was offline, not batching: its next 3 h silence is flagged at 2 h again."""
    engine = RuleEngine(RuleConfig())
    minutes = [m for m in range(0, 24 * 60, 5) if not 300 <= m < 600 and not 900 <= m < 1080]
    watch = [reading("w1", m, worn=True) for m in range(0, 24 * 60, 5)]
    findings = run(engine, sorted(watch + [reading("m1", m, water_volume_l=10) for m in minutes], key=lambda r: r.ts))
    assert [device for device, _ in offline(findings)] == ["m1", "m1"]
    assert all(silent < 135 for _, silent in offline(findings))
