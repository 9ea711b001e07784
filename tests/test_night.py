"""The night pattern on hand-built homes: a resident up in the deep night, seen by the watch or by taps and stove."""

from __future__ import annotations

from datetime import timedelta

from carebed.schemas import Finding, FindingCode, Severity
from detector.patterns import HomePatterns, PatternConfig
from tests.scenarios import HOME, TZ, Home, at, readings


def wanderings(home: Home) -> list[Finding]:
    patterns = HomePatterns(HOME, PatternConfig(tz=TZ))
    return [f for r in readings(home) for f in patterns.process(r) if f.code is FindingCode.NIGHT_WANDERING]


def test_a_resident_up_at_night_with_the_watch_off_is_seen_in_water_and_gas_use() -> None:
    home = Home(days=14, seed=9, watch_off_at_night=True, wandering=(at(12, 2.5), 75))
    found = wanderings(home)
    assert len(found) == 1
    assert at(12, 2.5) < found[0].detected_at <= at(12, 2.5) + timedelta(hours=1)
    assert found[0].severity is Severity.MEDIUM and found[0].evidence["channels"] == "water, gas"
    assert "the watch is off" in found[0].summary


def test_ordinary_nights_with_the_watch_off_raise_no_wandering() -> None:
    for seed in (21, 22):
        assert wanderings(Home(days=21, seed=seed, watch_off_at_night=True)) == []
