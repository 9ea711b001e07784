"""The evaluation's populations (pure, small homes) and `carebed eval --profile` as a user runs it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from itertools import pairwise

import pytest
from click.testing import CliRunner

from carebed.schemas import DeviceKind
from carebed_app.cli import main
from evaluation.core import START
from evaluation.matrix import FLOW_RULE, REPORT_SEEDS, RULE, TUNING_SEEDS, home_seeds
from evaluation.populations import POPULATIONS, HomeCase, draw_home
from evaluation.streams import arrivals
from simulators.residents import SLOTS_PER_DAY, Illness, IncidentType
from tests.detection_data import TZ


def homes(profile: str, n: int = 6, days: int = 12, seed: int = 3) -> list[HomeCase]:
    return [
        draw_home(POPULATIONS[profile], f"home-{k:05d}", START, days, s, TZ, incidents)
        for k, (s, incidents) in enumerate(home_seeds(profile, seed, n), 1)
    ]


def kinds(case: HomeCase) -> Counter[DeviceKind]:
    return Counter(r.device_kind for _, r in arrivals(case))


@pytest.mark.parametrize("profile", list(POPULATIONS))
def test_a_population_is_a_function_of_its_seed(profile: str) -> None:
    first, again = homes(profile, 2, 6), homes(profile, 2, 6)
    for a, b in zip(first, again, strict=True):
        assert a.kit == b.kit and a.traits == b.traits
        assert a.timeline.water_l == b.timeline.water_l and a.timeline.worn == b.timeline.worn
        assert [(t, r.model_dump()) for t, r in arrivals(a)] == [(t, r.model_dump()) for t, r in arrivals(b)]


def test_full_is_todays_simulator() -> None:
    from simulators.residents import build_timeline, readings

    (case,) = homes("full", 1, 6)
    seed, incidents = home_seeds("full", 3, 1)[0]
    today = build_timeline("home-00001", START, 6, seed, TZ, incidents)
    assert [r.model_dump() for _, r in arrivals(case)] == [r.model_dump() for r in readings(today)]


def test_totals_only_meters_report_every_15_minutes_without_a_flow_rate() -> None:
    for case in homes("meters_15min"):
        meter = [r for _, r in arrivals(case) if r.device_kind is DeviceKind.WATER_METER]
        gaps = {b.ts - a.ts for a, b in pairwise(meter)}
        assert min(gaps) == timedelta(minutes=15)
        assert all(r.water_flow_l_min is None and r.water_volume_l is not None for r in meter)


def test_hourly_meters_come_without_a_wearable() -> None:
    cases = homes("meters_60min", 8)
    assert all(kinds(c)[DeviceKind.WEARABLE] == 0 for c in cases)
    assert {c.kit.gas for c in cases} == {True, False}, "gas in some homes only"
    for case in cases:
        assert kinds(case)[DeviceKind.WATER_METER] <= 12 * 24 + 1


def test_water_only_homes_send_water_and_nothing_else_and_draw_their_interval() -> None:
    cases = homes("water_only", 12)
    assert all(set(kinds(c)) == {DeviceKind.WATER_METER} for c in cases)
    assert len({c.kit.interval_min for c in cases}) >= 3
    assert any(c.traits["long_sleeper"] for c in cases)


def test_watches_go_silent_for_ordinary_reasons_that_are_not_outages() -> None:
    cases = homes("watch", 10, 14)
    habits = Counter(k for c in cases for k in ("hub", "night_off", "charger_silent") if c.traits[k])
    assert set(habits) == {"hub", "night_off", "charger_silent"}
    for case in cases:
        faulty = sum(int((b - a).total_seconds() // 300) for f, a, b in case.timeline.faults if f.startswith("wear"))
        silent = case.timeline.slots - kinds(case)[DeviceKind.WEARABLE]
        if case.traits["night_off"]:
            assert silent - faulty > 14 * 8 * 12, "silent every night, beyond any fault"


def test_households_bring_appliances_leaks_and_visitors() -> None:
    cases = homes("household", 16, 14)
    assert {"irrigation", "purifier", "washing_machine"} & {c.traits.get("appliance") for c in cases}
    leaks = [c.traits["leak_l_min"] for c in cases if "leak_l_min" in c.traits]
    assert leaks and all(0.03 <= rate <= 0.3 for rate in leaks)
    assert any(c.traits.get("visitor_stays") for c in cases)


def test_short_history_puts_incidents_in_the_first_week() -> None:
    onsets = [
        (g.onset - case.timeline.start).days for case in homes("short_history", 8, 20) for g in case.timeline.incidents
    ]
    assert onsets and min(onsets) <= 5


def test_late_batches_arrive_hours_after_their_device_time_in_arrival_order() -> None:
    for case in homes("late_batches", 4):
        delivered = arrivals(case)
        assert [t for t, _ in delivered] == sorted(t for t, _ in delivered)
        late = [t - r.ts for t, r in delivered if r.device_kind is DeviceKind.WATER_METER]
        assert max(late) >= timedelta(minutes=45) and all(d >= timedelta(0) for d in late)
        assert all(r.received_at == t for t, r in delivered)


def test_lossy_links_drop_a_few_per_cent() -> None:
    for case in homes("drops", 4):
        got = kinds(case)[DeviceKind.WATER_METER]
        expected = case.timeline.slots // (case.kit.interval_min // 5)
        assert 0.9 * expected < got < expected, (got, expected, case.kit.drop_rate)


def test_gradual_illness_falls_then_stays_low() -> None:
    sick = Illness(drop=0.6, ramp_days=4, low_days=5)
    factors = sick.factors()
    assert factors[3] == pytest.approx(0.4) and factors[3:9] == (pytest.approx(0.4),) * 6
    assert list(factors[:4]) == sorted(factors[:4], reverse=True)
    assert sick.days == 9
    for case in homes("drops", 12, 30):
        for g in case.timeline.incidents:
            if g.incident is IncidentType.ILLNESS:
                assert (
                    7 * SLOTS_PER_DAY
                    <= case.timeline.slot_of(g.end) - case.timeline.slot_of(g.onset)
                    <= 13 * SLOTS_PER_DAY
                )


def test_some_wanderers_leave_their_watch_off_and_use_water_at_night() -> None:
    wanderers = [
        c
        for p in ("watch", "drops", "household", "meters_15min")
        for c in homes(p, 14, 14)
        if c.traits.get("wanders_without_watch")
    ]
    assert wanderers
    for case in wanderers:
        (g,) = [g for g in case.timeline.incidents if g.incident is IncidentType.NIGHT_WANDERING]
        first, last = case.timeline.slot_of(g.onset), case.timeline.slot_of(g.end)
        assert not any(case.timeline.worn[first:last])
        assert sum(case.timeline.water_l[first:last]) > 0


def test_seed_sets_are_disjoint() -> None:
    assert not set(TUNING_SEEDS) & set(REPORT_SEEDS)


def test_eval_profile_json_gives_every_cell() -> None:
    args = ["eval", "--profile", "full", "--profile", "water_only", "--homes", "2", "--days", "8", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["profiles"]) == {"full", "water_only"}
    for row in report["profiles"].values():
        assert row["homes"] == 2 and row["days"] == 8
        assert set(row["baselines"]) == {"no_water_12h", "no_water_24h", "no_water_8h", "continuous_flow_2h"}
        for cells in (row["carebed"], row["baselines"][RULE], row["baselines"][FLOW_RULE]):
            for key in (
                "collapse_found_12h",
                "collapse_median_day_min",
                "collapse_median_night_min",
                "false_welfare_per_resident_month",
                "false_flow_per_resident_month",
                "device_alerts_per_device_month",
                "outages_missed",
                "tap_median_past_normal_min",
                "stove_median_past_normal_min",
                "illness_found",
                "wandering_found",
            ):
                assert key in cells
            assert cells["outages_missed"] <= cells["outages_to_flag"]
        ours = row["carebed"]
        assert sum(ours["versus_rule"].values()) == ours["collapses"]
        assert ours["state_bytes_mean"] <= ours["state_bytes_max"]
        assert set(ours["incidents"]) == {t.value for t in IncidentType}
    assert report["profiles"]["water_only"]["device_months"] < report["profiles"]["full"]["device_months"]


def test_eval_profile_all_runs_every_population() -> None:
    result = CliRunner().invoke(main, ["eval", "--profile", "all", "--homes", "1", "--days", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["profiles"]) == list(POPULATIONS)
    assert [p for p, row in report["profiles"].items() if row["held_out"]] == ["late_batches", "drops"]


def test_eval_profile_refuses_unknown_names_and_seed_sets() -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["eval", "--profile", "mansion", "--homes", "1", "--days", "2"])
    assert bad.exit_code == 2 and "mansion" in bad.output and "water_only" in bad.output
    seeds = runner.invoke(main, ["eval", "--profile", "full", "--seeds", "held-out"])
    assert seeds.exit_code == 2 and "--seeds" in seeds.output


def test_eval_profile_prints_the_matrix_tables() -> None:
    result = CliRunner().invoke(main, ["eval", "--profile", "drops", "--homes", "1", "--days", "4", "--seeds", "5,6"])
    assert result.exit_code == 0, result.output
    assert "drops (held out)" in result.stdout and "seeds 5, 6" in result.stdout


def test_the_2h_flow_rule_reads_a_totals_only_meter_by_its_mean_flow() -> None:
    from datetime import datetime

    from carebed.schemas import FindingCode
    from detector.baselines import ContinuousFlowRule
    from simulators.residents import telemetry

    def run(litres_per_15min: float) -> list[datetime]:
        rule = ContinuousFlowRule(timedelta(hours=2))
        start, found = START, []
        for k in range(20):
            ts = start + timedelta(minutes=15 * k)
            reading = telemetry(
                "home-00001", DeviceKind.WATER_METER, ts, ts, water_volume_l=1000 + k * litres_per_15min
            )
            found += [f.detected_at for f in rule.process(reading) if f.code is FindingCode.LONG_WATER_FLOW]
        return found

    assert run(3.0) == [START + timedelta(hours=2, minutes=15)], "0.2 L/min from the second total on, for 2 h"
    assert run(1.0) == [], "0.07 L/min is a drip, not a flow"
