"""Unit tests of the learned living patterns, on seeded simulated homes, in event time."""

from __future__ import annotations

import doctest
import pickle
from datetime import timedelta

import detector.patterns
import detector.spells
from carebed.schemas import DeviceKind, Feedback, FeedbackKind, Finding, FindingCode, Reading, Severity
from carebed.topics import DeviceChannel
from detector.patterns import HomePatterns, PatternConfig
from simulators.residents import GroundTruth, IncidentType
from tests.detection_data import START, TZ, stream, timeline

CONFIG = PatternConfig(tz=TZ)
HOME = "home-00001"


def run(readings: tuple[Reading, ...], feedback: tuple[Feedback, ...] = ()) -> tuple[list[Finding], HomePatterns]:
    home = HomePatterns(HOME, CONFIG)
    pending = sorted(feedback, key=lambda f: f.ts)
    findings = []
    for reading in readings:
        while pending and pending[0].ts <= reading.ts:
            home.apply(pending.pop(0))
        findings.extend(home.process(reading))
    return findings, home


def incident(days: int, kind: IncidentType, seed: int, from_day: int = 12) -> GroundTruth:
    return timeline(days, (kind,), seed, from_day).incidents[0]


def first(findings: list[Finding], code: FindingCode, truth: GroundTruth) -> Finding | None:
    hits = [f for f in findings if f.code is code and truth.onset <= f.detected_at <= truth.end]
    return hits[0] if hits else None


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(detector.patterns).failed == 0
    assert doctest.testmod(detector.spells).failed == 0


def test_a_collapse_in_the_day_is_noticed_within_hours_with_readable_evidence() -> None:
    truth = incident(20, IncidentType.COLLAPSE_DAY, seed=1)
    findings, _ = run(stream(20, (IncidentType.COLLAPSE_DAY,), 1, 12))
    found = first(findings, FindingCode.INACTIVITY, truth)
    assert found is not None
    assert found.detected_at - truth.onset <= timedelta(hours=3)
    assert found.severity is Severity.HIGH
    assert found.id == f"{HOME}:inactivity:{found.ts.isoformat()}"
    assert found.evidence["basis"] == "learned"
    probability = found.evidence["probability"]
    assert isinstance(probability, float) and 0 < probability < CONFIG.inactivity_alpha
    assert "under this home's normal pattern" in found.summary and "1 in" in found.summary


def test_away_suppresses_welfare_findings_until_it_ends() -> None:
    truth = incident(20, IncidentType.COLLAPSE_DAY, seed=1)
    until = truth.onset + timedelta(hours=20)
    away = Feedback(id="a1", home_id=HOME, kind=FeedbackKind.AWAY, ts=truth.onset - timedelta(hours=1), until=until)
    findings, _ = run(stream(20, (IncidentType.COLLAPSE_DAY,), 1, 12), (away,))
    during = [f for f in findings if away.ts <= f.detected_at < until]
    assert during == []
    after = [f for f in findings if f.code is FindingCode.INACTIVITY and f.detected_at >= until]
    assert after, "the silence goes on after the away period, so it is raised then"


def test_a_false_alarm_makes_that_home_less_sensitive_for_that_cause_only() -> None:
    truth = incident(20, IncidentType.COLLAPSE_DAY, seed=1)
    readings = stream(20, (IncidentType.COLLAPSE_DAY,), 1, 12)
    feedback = tuple(
        Feedback(id=f"f{n}", home_id=HOME, kind=FeedbackKind.FALSE_ALARM, ts=START, code=FindingCode.INACTIVITY)
        for n in range(3)
    )
    plain = first(run(readings)[0], FindingCode.INACTIVITY, truth)
    findings, home = run(readings, feedback)
    damped = first(findings, FindingCode.INACTIVITY, truth)
    assert plain is not None and damped is not None
    assert damped.detected_at > plain.detected_at
    assert set(home.sensitivity) == {FindingCode.INACTIVITY}


def test_a_tap_left_on_is_caught_before_the_fixed_two_hours_once_learned() -> None:
    truth = incident(20, IncidentType.TAP_LEFT_ON, seed=1)
    findings, _ = run(stream(20, (IncidentType.TAP_LEFT_ON,), 1, 12))
    found = first(findings, FindingCode.LONG_WATER_FLOW, truth)
    assert found is not None
    assert found.evidence["basis"] == "learned"
    assert found.detected_at - truth.onset < timedelta(hours=2)
    assert truth.normal_max_min is not None
    assert found.detected_at - truth.onset > timedelta(minutes=truth.normal_max_min)


def test_in_cold_start_a_tap_left_on_waits_for_the_fixed_floor() -> None:
    truth = incident(8, IncidentType.TAP_LEFT_ON, seed=2, from_day=1)
    findings, _ = run(stream(8, (IncidentType.TAP_LEFT_ON,), 2, 1))
    found = first(findings, FindingCode.LONG_WATER_FLOW, truth)
    assert found is not None
    assert found.evidence["basis"] == "fixed_floor"
    assert found.evidence["flowing_min"] in (60, 120)


def test_walking_in_the_deep_night_is_raised_as_wandering() -> None:
    truth = incident(20, IncidentType.NIGHT_WANDERING, seed=2)
    findings, _ = run(stream(20, (IncidentType.NIGHT_WANDERING,), 2, 12))
    found = first(findings, FindingCode.NIGHT_WANDERING, truth)
    assert found is not None
    assert found.severity is Severity.MEDIUM
    assert found.detected_at - truth.onset <= timedelta(hours=1)


def test_an_illness_over_days_is_raised_as_a_low_severity_decline() -> None:
    truth = incident(30, IncidentType.ILLNESS, seed=2, from_day=16)
    findings, _ = run(stream(30, (IncidentType.ILLNESS,), 2, 16))
    found = first(findings, FindingCode.ACTIVITY_DECLINE, truth)
    assert found is not None
    assert found.severity is Severity.LOW
    share = found.evidence["share_of_usual"]
    assert isinstance(share, float) and share < 0.75


def test_a_home_state_stays_within_16_kb_after_a_month() -> None:
    _, home = run(stream(30, (), 4))
    assert home.learned_days >= 25
    assert len(pickle.dumps(home, protocol=pickle.HIGHEST_PROTOCOL)) <= 16 * 1024


def _meter(minute: int, volume: float) -> Reading:
    ts = START + timedelta(minutes=minute)
    return Reading(
        home_id=HOME,
        device_id="m1",
        device_kind=DeviceKind.WATER_METER,
        channel=DeviceChannel.TELEMETRY,
        ts=ts,
        received_at=ts,
        water_volume_l=volume,
    )


def test_a_meter_reset_is_not_read_as_water_use() -> None:
    home = HomePatterns(HOME, CONFIG)
    home.process(_meter(0, 40_000.0))
    home.process(_meter(5, 3.0))
    assert home.last_fixture_use is None
    home.process(_meter(10, 9.0))
    assert home.last_fixture_use == START + timedelta(minutes=10)
