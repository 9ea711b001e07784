"""Response-time records and the report per street and community."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.response_times import AlertRecord, report, seconds_to

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def alert(street: str, community: str, ack_s: float | None, arrive_s: float | None = None) -> AlertRecord:
    def after(seconds: float | None) -> datetime | None:
        return T0 + timedelta(seconds=seconds) if seconds is not None else None

    return AlertRecord(street, community, T0, after(1.5), after(ack_s), after(arrive_s), after(3600))


def test_each_alert_records_the_time_to_each_milestone() -> None:
    assert seconds_to(alert("s", "c", 42, 900)) == {
        "notified": 1.5,
        "acknowledged": 42.0,
        "arrived": 900.0,
        "resolved": 3600.0,
    }
    assert seconds_to(alert("s", "c", None))["acknowledged"] is None


def test_shares_within_60_and_180_s_against_the_telecare_targets_per_street_and_community() -> None:
    records = [alert("东街", "一社区", s) for s in (10, 30, 59, 60)]
    records += [alert("东街", "二社区", 61), alert("东街", "二社区", None)]  # never acknowledged: counts as late
    records += [alert("西街", "三社区", 170), alert("西街", "三社区", 200)]
    by_community = {(r.street, r.community): r for r in report(records, "community")}
    one, two, total = by_community[("东街", "一社区")], by_community[("东街", "二社区")], by_community[("", "")]
    assert (one.alerts, one.acked_within_s, one.meets_target) == (4, {60: 1.0, 180: 1.0}, {60: True, 180: True})
    assert two.acked_within_s == {60: 0.0, 180: 0.5} and two.meets_target == {60: False, 180: False}
    assert total.alerts == 8 and total.acked_within_s[60] == 4 / 8 and total.acked_within_s[180] == 6 / 8
    assert one.percentiles_s["acknowledged"] == {50: 30, 90: 60, 95: 60, 99: 60}
    assert two.percentiles_s["arrived"] == {50: None, 90: None, 95: None, 99: None}

    by_street = report(records, "street")
    assert [(r.street, r.community, r.alerts) for r in by_street] == [("东街", "", 6), ("西街", "", 2), ("", "", 8)]
