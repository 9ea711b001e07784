"""The meter patterns on hand-built homes: the fixed water rule as a floor, trickles, coarse meters, schedules."""

from __future__ import annotations

from datetime import timedelta

from carebed.schemas import Finding, FindingCode, Reading, Severity
from detector.baselines import NoWaterRule
from detector.patterns import HomePatterns, PatternConfig
from tests.scenarios import HOME, TZ, Home, at, readings

CONFIG = PatternConfig(tz=TZ)


def run(home: Home) -> tuple[list[Finding], list[Finding]]:
    """carebed's findings and the deployed "< 10 L in 12 h" rule's, on the same readings."""
    patterns, rule = HomePatterns(HOME, CONFIG), NoWaterRule(timedelta(hours=12))
    found: list[Finding] = []
    ruled: list[Finding] = []
    stream: list[Reading] = list(readings(home))
    for reading in stream:
        found += patterns.process(reading)
        ruled += rule.process(reading)
    return found, ruled


def first(findings: list[Finding], code: FindingCode, after: object) -> Finding | None:
    hits = [f for f in findings if f.code is code and f.detected_at >= after]  # type: ignore[operator]
    return hits[0] if hits else None


def test_a_collapse_is_never_raised_later_than_the_deployed_water_rule() -> None:
    """Water-only homes with short history, coarse meters and a trickle: the rule's decision is carebed's latest."""
    for home in (
        Home(days=6, seed=3, wearable=False, gas=False, meter_every_min=15, flow_field=False, stop_at=at(4, 15)),
        Home(days=6, seed=4, wearable=False, gas=False, meter_every_min=60, flow_field=False, stop_at=at(3, 21.5)),
        Home(days=12, seed=5, wearable=False, gas=True, stop_at=at(9, 10)),
    ):
        found, ruled = run(home)
        assert home.stop_at is not None
        ours = first(found, FindingCode.INACTIVITY, home.stop_at)
        theirs = first(ruled, FindingCode.INACTIVITY, home.stop_at)
        assert ours is not None and theirs is not None
        assert ours.detected_at <= theirs.detected_at + timedelta(minutes=5), home


def test_a_cistern_trickle_is_neither_activity_nor_a_tap_left_on_but_a_possible_leak() -> None:
    home = Home(days=8, seed=6, wearable=False, leak_l_min=0.2, stop_at=at(6, 11))
    found, ruled = run(home)
    assert [f for f in found if f.code is FindingCode.LONG_WATER_FLOW] == []
    leaks = [f for f in found if f.code is FindingCode.POSSIBLE_LEAK]
    assert len(leaks) == 1 and leaks[0].technical and leaks[0].severity is Severity.LOW
    assert "0.20 L/min" in leaks[0].summary and leaks[0].device_id == f"{HOME}-water-meter"
    collapse = first(found, FindingCode.INACTIVITY, at(6, 11))
    assert collapse is not None and collapse.detected_at - at(6, 11) <= timedelta(hours=12)
    assert first(ruled, FindingCode.INACTIVITY, at(6, 11)) is None  # 288 L a day of trickle blinds the rule


def test_a_tap_left_on_is_found_from_a_coarse_meters_totals() -> None:
    """15-minute totals without a flow field: a steady 90 L per interval is continuous flow, long before 2 h."""
    home = Home(days=12, seed=7, wearable=False, meter_every_min=15, flow_field=False, tap_on=(at(10, 10.2), 240))
    found, _ = run(home)
    tap = first(found, FindingCode.LONG_WATER_FLOW, at(10, 10.2))
    assert tap is not None and tap.evidence["basis"] == "learned"
    assert tap.detected_at - at(10, 10.2) <= timedelta(minutes=90)
    assert [f for f in found if f.code is FindingCode.LONG_WATER_FLOW and f.detected_at < at(10, 10)] == []


def test_an_appliance_on_a_timer_is_learned_and_a_tap_at_another_time_still_fires() -> None:
    """Irrigation at 03:00 for 70 min every night: no night-flow alerts once learned; a tap left on at 15:00 fires."""
    home = Home(days=14, seed=8, schedule=(3.0, 70, 8.0), tap_on=(at(12, 15), 180))
    found, _ = run(home)
    flows = [f for f in found if f.code is FindingCode.LONG_WATER_FLOW]
    assert [f for f in flows if f.detected_at >= at(5, 0) and f.ts.astimezone(TZ).hour == 3] == []
    tap = first(flows, FindingCode.LONG_WATER_FLOW, at(12, 15))
    assert tap is not None and tap.detected_at - at(12, 15) <= timedelta(minutes=90)


def test_with_the_veto_a_long_sleepers_ordinary_nights_do_not_trip_the_water_rule() -> None:
    """A long sleeper in a water-only home: the rule and the strict floor fire on ordinary nights; the veto does not."""
    home = Home(days=20, seed=15, wearable=False, gas=False, wake=9.5, sleep=20.5)
    strict, ruled = run(home)
    patterns = HomePatterns(HOME, PatternConfig(tz=TZ, floor_veto_p=0.02))
    vetoed = [f for r in readings(home) for f in patterns.process(r)]
    learned_from = at(CONFIG.cold_start_days + 1, 0)
    nights = [f for f in ruled if f.detected_at > learned_from]
    assert len(nights) >= 3
    assert len([f for f in strict if f.code is FindingCode.INACTIVITY and f.detected_at > learned_from]) >= len(nights)
    assert [f for f in vetoed if f.code is FindingCode.INACTIVITY and f.detected_at > learned_from] == []


def test_water_uploaded_in_late_batches_counts_at_its_device_time_as_the_rule_counts_it() -> None:
    """Totals every 15 min uploaded every 4 h: carebed decides no later than the rule on the same arrivals."""
    home = Home(days=8, seed=16, wearable=False, gas=False, meter_every_min=15, flow_field=False, stop_at=at(6, 9.5))
    stream = list(readings(home))
    uploads = sorted({at(0, 0) + timedelta(hours=4 * (1 + (r.ts - at(0, 0)) // timedelta(hours=4))) for r in stream})
    patterns, rule = HomePatterns(HOME, CONFIG), NoWaterRule(timedelta(hours=12))
    ours: list[tuple[object, Finding]] = []
    theirs: list[tuple[object, Finding]] = []
    for upload in uploads:
        ours += [(upload, f) for f in patterns.advance(upload)]
        for reading in (r for r in stream if upload - timedelta(hours=4) < r.ts <= upload):
            ours += [(upload, f) for f in patterns.process(reading)]
            theirs += [(upload, f) for f in rule.process(reading)]
    assert home.stop_at is not None
    mine = [a for a, f in ours if f.code is FindingCode.INACTIVITY and f.detected_at >= home.stop_at]
    rules = [a for a, f in theirs if f.detected_at >= home.stop_at]
    assert mine and rules and mine[0] <= rules[0]  # type: ignore[operator]


def test_a_lost_report_does_not_restart_the_water_rules_twelve_hours() -> None:
    """A link that loses two reports now and then is not an outage: the floor keeps its 12 h of observation."""
    patterns = HomePatterns(HOME, CONFIG)
    stream = list(readings(Home(days=3, seed=17, wearable=False, gas=False, meter_every_min=15, lose_every=7)))
    for reading in stream:
        patterns.process(reading)
    assert patterns.water_since == stream[0].ts
