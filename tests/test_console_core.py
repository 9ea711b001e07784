"""Unit tests of the console's pure cores: the activity rollup, registry files, dashboard statistics, call text."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerting.dashboard import AlertTimes, percentile, summarise
from alerting.messages import AlertText, voice_text
from alerting.rollup import ActivityRollup, bucket_start
from alerting.twilio_client import say_twiml
from carebed.registry_files import RegistryFileError, RowError, parse_registry
from carebed.schemas import DeviceKind, FindingCode, Reading, Severity
from carebed.topics import DeviceChannel

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def reading(minute: float, device: str = "m-1", **values: object) -> Reading:
    ts = T0 + timedelta(minutes=minute)
    return Reading.model_validate(
        {
            "home_id": "h-1",
            "device_id": device,
            "device_kind": DeviceKind.WATER_METER,
            "channel": DeviceChannel.TELEMETRY,
            "ts": ts,
            "received_at": ts,
            **values,
        }
    )


def test_rollup_takes_differences_of_totals_per_bucket_and_survives_resets() -> None:
    rollup = ActivityRollup()
    for minute, volume in ((0, 100.0), (5, 110.0), (16, 115.0), (20, 2.0), (25, 4.0)):
        rollup.add(reading(minute, water_volume_l=volume, battery_pct=90))
    buckets, seen = rollup.drain()
    assert {start.minute: usage.water_l for (_, start), usage in buckets.items()} == {0: 10.0, 15: 9.0}
    assert seen["m-1"].last_seen == T0 + timedelta(minutes=25) and seen["m-1"].battery_pct == 90
    rollup.add(reading(31, water_volume_l=5.0))
    buckets, _ = rollup.drain()
    assert [u.water_l for u in buckets.values()] == [1.0], "the total carries over a drain"


def test_rollup_ignores_an_older_reading_so_a_redelivery_adds_nothing() -> None:
    rollup = ActivityRollup()
    for minute, steps in ((0, 10), (10, 50), (5, 30), (10, 50)):
        rollup.add(reading(minute, device="w-1", steps=steps))
    buckets, seen = rollup.drain()
    assert sum(u.steps for u in buckets.values()) == 40
    assert seen["w-1"].last_seen == T0 + timedelta(minutes=10)


def test_the_rollup_s_running_totals_leave_the_garbage_collector_nothing_to_scan() -> None:
    """One per device for good; as objects, 300k of them made each full collection take 280 ms."""
    rollup = ActivityRollup()
    for device in range(100):
        rollup.add(reading(0, device=f"m-{device}", water_volume_l=1.0))
        rollup.add(reading(1, device=f"m-{device}", water_volume_l=2.0))
    rollup.drain()
    gc.collect()
    totals = list(rollup._totals.values())
    assert len(totals) == 100 and not any(gc.is_tracked(device_totals) for device_totals in totals)


def test_bucket_start() -> None:
    assert bucket_start(datetime(2026, 1, 1, 10, 44, 59, 999, tzinfo=UTC)) == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)


CSV_HEADER = "home_id,address,community,kind,name,birth_year,conditions,phone,relation,language,device_id,device_kind\n"


def errors_of(content: str, filename: str) -> list[RowError]:
    with pytest.raises(RegistryFileError) as raised:
        parse_registry(content.encode(), filename)
    return raised.value.errors


def test_csv_import_builds_homes_from_rows() -> None:
    registry = parse_registry(
        (
            CSV_HEADER + "h-1,人民路1号,一社区,resident,王秀英,1941,高血压; 糖尿病,,,,,\n"
            "h-1,,,responder,王强,,,+8613912345678,son,en,,\n"
            "h-1,,,device,,,,,,,w-1,wearable\n"
            "h-2,,二社区,resident,李兰,,,,,,,\n"
        ).encode(),
        "homes.csv",
    )
    first, second = registry.homes
    assert (first.address, first.community, first.residents[0].conditions) == (
        "人民路1号",
        "一社区",
        ["高血压", "糖尿病"],
    )
    assert (first.responders[0].phone, first.responders[0].language, first.devices[0].kind) == (
        "+8613912345678",
        "en",
        DeviceKind.WEARABLE,
    )
    assert second.community == "二社区"


def test_the_example_csv_says_what_the_example_yaml_says_of_its_first_home() -> None:
    deploy = Path(__file__).resolve().parents[1] / "deploy"
    from_csv = parse_registry((deploy / "registry.example.csv").read_bytes(), "registry.example.csv")
    from_yaml = parse_registry((deploy / "registry.example.yaml").read_bytes(), "registry.example.yaml")
    assert from_csv.homes == from_yaml.homes[:1]


def test_csv_errors_name_row_and_column() -> None:
    errors = errors_of(
        CSV_HEADER + "h-1,,,resident,王秀英,1850,,,,,,\n"
        "h-1,,,responder,王强,,,12345,son,,,\n"
        "h-1,,,pet,,,,,,,,\n"
        ",,,resident,x,,,,,,,\n"
        "h-1,,,device,,,,,,,w-1,toaster\n",
        "homes.csv",
    )
    assert [(e.row, e.field) for e in errors] == [
        (2, "birth_year"),
        (3, "phone"),
        (4, "kind"),
        (5, "home_id"),
        (6, "device_kind"),
    ]


def test_csv_home_level_errors_point_at_the_home_s_first_row() -> None:
    errors = errors_of(CSV_HEADER + "h-1,,,device,,,,,,,w-1,wearable\nh 2,,,resident,x,,,,,,,\n", "homes.csv")
    assert [(e.row, e.field) for e in errors] == [(2, "residents"), (3, "home_id")]
    assert [(e.row, e.field) for e in errors_of("home_id,colour\n", "homes.csv")] == [(1, "kind"), (1, "colour")]


def test_yaml_errors_name_the_home_and_the_field() -> None:
    errors = errors_of(
        "homes:\n  - id: h-1\n    residents: [{name: a}]\n  - id: h-2\n    residents: [{name: b, language: fr}]\n",
        "homes.yaml",
    )
    assert [(e.row, e.field) for e in errors] == [(2, "residents[0].language")]
    assert errors_of("homes: [\n", "homes.yaml")[0].message.startswith("not valid YAML")
    with pytest.raises(RegistryFileError) as raised:
        parse_registry(b"\xff\xfe", "homes.yaml")
    assert raised.value.errors == [RowError(0, "", "the file is not UTF-8 text")]


def test_dashboard_percentiles_and_shares() -> None:
    def alert(community: str, ack_s: float | None, sent_s: float | None = None) -> AlertTimes:
        return AlertTimes(
            community,
            T0,
            T0 + timedelta(seconds=ack_s) if ack_s is not None else None,
            T0 + timedelta(seconds=sent_s) if sent_s is not None else None,
            ack_s is None,
        )

    rows = summarise(
        [alert("a", 30, 2), alert("a", 90, 3), alert("a", 200), alert("b", None)],
        [("a", False), ("a", True), ("b", False)],
    )
    total, a, b = rows
    assert (total.community, total.alerts, total.open, total.devices, total.devices_offline) == ("", 4, 1, 3, 1)
    assert (a.ack_p50_s, a.ack_p90_s, a.ack_max_s, a.sent_p50_s) == (90, 200, 200, 2)
    assert (a.acked_within_60s, a.acked_within_180s) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert (b.ack_p50_s, b.acked_within_60s) == (None, 0.0)
    assert percentile([], 50) is None and percentile([5], 99) == 5


def test_a_call_speaks_the_alert_in_the_responder_s_language() -> None:
    text = AlertText(7, FindingCode.FALL, Severity.CRITICAL, "王秀英", "人民路1号", T0)
    chinese = voice_text(text, "zh-CN", ZoneInfo("Asia/Shanghai"))
    assert "王秀英" in chinese and "16点0分" in chinese and "7" in chinese
    twiml = say_twiml(chinese, "zh-CN")
    assert 'voice="Polly.Zhiyu"' in twiml and 'language="cmn-CN"' in twiml and "王秀英" in twiml
    english = say_twiml(voice_text(text, "en", ZoneInfo("Asia/Shanghai")), "en")
    assert 'language="en-US"' in english and "may have fallen" in english and "16:00" in english
