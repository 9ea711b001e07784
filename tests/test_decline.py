"""The decline pattern: days much less active than usual, on whichever channels the home has."""

from __future__ import annotations

from carebed.schemas import FindingCode, Severity
from detector.decline import MIN_USUAL_DAYS, DailyTotals
from detector.patterns import HomePatterns, PatternConfig
from tests.scenarios import HOME, TZ, Home, at, readings


def declines(home: Home) -> list[tuple[int, float]]:
    patterns = HomePatterns(HOME, PatternConfig(tz=TZ))
    found = [f for r in readings(home) for f in patterns.process(r) if f.code is FindingCode.ACTIVITY_DECLINE]
    assert all(f.severity is Severity.LOW for f in found)
    return [((f.detected_at - at(0, 0)).days, float(f.evidence["share_of_usual"])) for f in found]


def test_a_gradual_illness_is_found_while_it_lasts_on_every_kit() -> None:
    """Activity falls by 60 % over four days from day 16: found within those days, with a watch or water alone."""
    for kit in ({"wearable": True}, {"wearable": False}, {"wearable": False, "gas": False, "meter_every_min": 60}):
        found = declines(Home(days=24, seed=11, low_from_day=16, flow_field=False, **kit))  # type: ignore[arg-type]
        assert len(found) == 1, kit
        day, share = found[0]
        assert 17 <= day <= 21 and share <= 0.7, (kit, found)


def test_ordinary_days_raise_no_decline() -> None:
    for seed in (12, 13, 14):
        assert declines(Home(days=40, seed=seed)) == []


def test_two_low_days_are_a_decline_only_when_lower_than_every_usual_day() -> None:
    totals = DailyTotals()
    usual = [(100.0 + 7 * (d % 5), 3000.0, 60.0, 0.0) for d in range(MIN_USUAL_DAYS + 2)]
    assert [totals.add_day(day) for day in usual] == [None] * len(usual)
    assert totals.add_day((70.0, 2900.0, 20.0, 0.0)) is None  # one channel low, one day: not yet
    decline = totals.add_day((60.0, 1200.0, 25.0, 0.0))
    assert decline is not None and decline.share < 0.7 and decline.usual_days == len(usual)
    assert totals.add_day((50.0, 1000.0, 20.0, 0.0)) is None  # raised once per episode
