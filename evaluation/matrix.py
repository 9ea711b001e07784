"""Pure core of the evaluation matrix: every population, the whole detector and the fixed rules on the same homes.

Each home's readings reach the detector in arrival order with the clock ticking every 5 minutes
of arrival time, as the service does (it advances to the wall clock every 5 s), and a finding
counts from the moment it was raised, not from the device time it names: a batch that arrives
six hours late raises its alerts six hours late. Operators are simulated as in `carebed eval`
(declared trips as away feedback, "false alarm" half an hour after an unexplained welfare alert).
"""

from __future__ import annotations

import heapq
import pickle
import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table

from carebed.schemas import WELFARE_CODES, Feedback, Finding, FindingCode
from detector.baselines import fixed_rules
from detector.core import DetectorCore
from detector.patterns import PatternConfig
from detector.rules import RuleConfig
from evaluation.core import (
    DETECTED_BY,
    GRACE,
    LEARNED,
    OPERATOR_CHECKS_AFTER,
    START,
    Outcome,
    declared_away,
    false_alarm,
    incidents_for,
    summarise,
)
from evaluation.populations import POPULATIONS, HomeCase, draw_home
from evaluation.streams import arrivals
from simulators.residents import SLOT, GroundTruth, IncidentType, device_id

RULE = "no_water_12h"
FLOW_RULE = "continuous_flow_2h"
TUNING_SEEDS = (7, 8)
REPORT_SEEDS = (1001, 1002)
HELD_OUT_PROFILES = ("late_batches", "drops")
SEED_SETS = {"tuning": TUNING_SEEDS, "report": REPORT_SEEDS}
FOUND_WITHIN = timedelta(hours=12)
SAME_WITHIN = timedelta(minutes=5)
FLOW_CODES = frozenset({FindingCode.LONG_WATER_FLOW, FindingCode.LONG_GAS_FLOW})
WELFARE_ONLY = WELFARE_CODES - FLOW_CODES
COLLAPSES = (IncidentType.COLLAPSE_DAY, IncidentType.COLLAPSE_NIGHT)


def is_device_alert(code: FindingCode) -> bool:
    """A finding about a device rather than the resident (device_offline and any later technical code)."""
    return code.value.startswith("device")


@dataclass(frozen=True, slots=True)
class MatrixPlan:
    profiles: tuple[str, ...]
    seeds: tuple[int, ...]
    homes: int = 15
    days: int = 45
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))


Raised = tuple[datetime, Finding]


@dataclass(slots=True)
class HomeRun:
    """What every detector raised on one home, each finding with the arrival-clock time it was raised."""

    case: HomeCase
    raised: dict[str, list[Raised]]
    state_bytes: int


def run_case(case: HomeCase, rules: RuleConfig, patterns: PatternConfig) -> HomeRun:
    """Feed one home's deliveries to the whole detector and to the fixed rules, ticking every 5 minutes."""
    t = case.timeline
    core = DetectorCore(rules, patterns)
    baselines = fixed_rules()
    raised: dict[str, list[Raised]] = {LEARNED: [], **{name: [] for name in baselines}}
    feedback = [(fb.ts, n, fb) for n, fb in enumerate(declared_away(t))]
    heapq.heapify(feedback)
    serial = len(feedback)

    def deliver(until: datetime) -> None:
        while feedback and feedback[0][0] <= until:
            fb: Feedback = heapq.heappop(feedback)[2]
            core.apply(fb)
            for rule in baselines.values():
                rule.apply(fb)

    def ours(findings: list[Finding], at: datetime) -> None:
        nonlocal serial
        for finding in findings:
            raised[LEARNED].append((at, finding))
            if finding.code in WELFARE_CODES and not _explained(at, t.incidents):
                serial += 1
                when = at + OPERATOR_CHECKS_AFTER
                heapq.heappush(feedback, (when, serial, false_alarm(t, finding, when)))

    tick = t.start + SLOT
    for arrival, reading in arrivals(case):
        while tick < arrival:
            deliver(tick)
            ours(core.advance(tick), tick)
            tick += SLOT
        deliver(arrival)
        ours(core.process(reading), arrival)
        for name, rule in baselines.items():
            raised[name].extend((arrival, f) for f in rule.process(reading))
    return HomeRun(case, raised, len(pickle.dumps(core, protocol=pickle.HIGHEST_PROTOCOL)))


def _explained(at: datetime, truth: list[GroundTruth]) -> bool:
    return any(g.onset <= at <= g.end + GRACE for g in truth)


def _delays(raised: list[Raised], truth: list[GroundTruth]) -> list[tuple[GroundTruth, float | None]]:
    out: list[tuple[GroundTruth, float | None]] = []
    for g in truth:
        hits = [at for at, f in raised if f.code in DETECTED_BY[g.incident] and g.onset <= at <= g.end + GRACE]
        out.append((g, (min(hits) - g.onset).total_seconds() / 60 if hits else None))
    return out


@dataclass(slots=True)
class Tally:
    """One detector's counts over a profile's homes."""

    outcomes: list[Outcome] = field(default_factory=list)
    false_welfare: int = 0
    false_flow: int = 0
    device_alerts: int = 0
    device_false: int = 0
    outages: int = 0
    outages_missed: int = 0

    def add(self, run: HomeRun, raised: list[Raised]) -> None:
        truth = run.case.timeline.incidents
        welfare = [(at, f) for at, f in raised if f.code in WELFARE_CODES]
        unexplained = [f for at, f in welfare if not _explained(at, truth)]
        self.outcomes.append(Outcome(_delays(welfare, truth), unexplained))
        self.false_welfare += sum(f.code in WELFARE_ONLY for f in unexplained)
        self.false_flow += sum(f.code in FLOW_CODES for f in unexplained)
        device = [(at, f) for at, f in raised if is_device_alert(f.code)]
        self.device_alerts += len(device)
        home = run.case.timeline.home_id
        outages = run.case.outages()
        for at, f in device:
            if not any(
                f.device_id == device_id(home, o.kind) and o.start <= at <= o.end + run.case.kit.interval(o.kind)
                for o in outages
            ):
                self.device_false += 1
        for o in outages:
            if not run.case.must_flag(o):
                continue
            self.outages += 1
            grace = run.case.kit.interval(o.kind) + timedelta(minutes=10)
            if not any(f.device_id == device_id(home, o.kind) and o.start <= at <= o.end + grace for at, f in device):
                self.outages_missed += 1


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _share(hits: int, n: int) -> float | None:
    return round(hits / n, 3) if n else None


def _collapse_delays(tally: Tally) -> list[tuple[GroundTruth, float | None]]:
    return [(g, d) for o in tally.outcomes for g, d in o.delays if g.incident in COLLAPSES]


def headline(tally: Tally, resident_months: float, device_months: float) -> dict[str, Any]:
    """The issue's cells for one detector on one profile."""
    collapses = _collapse_delays(tally)
    within = FOUND_WITHIN.total_seconds() / 60
    found = [d for _, d in collapses if d is not None and d <= within]
    by_time = {
        kind: [d for g, d in collapses if g.incident is kind and d is not None and d <= within] for kind in COLLAPSES
    }
    rows: dict[str, Any] = {
        "collapses": len(collapses),
        "collapse_found_12h": _share(len(found), len(collapses)),
        "collapse_found": _share(sum(d is not None for _, d in collapses), len(collapses)),
        "collapse_median_day_min": _median(by_time[IncidentType.COLLAPSE_DAY]),
        "collapse_median_night_min": _median(by_time[IncidentType.COLLAPSE_NIGHT]),
        "false_welfare_per_resident_month": round(tally.false_welfare / resident_months, 3),
        "false_flow_per_resident_month": round(tally.false_flow / resident_months, 3),
        "device_alerts_per_device_month": round(tally.device_alerts / device_months, 3),
        "false_device_alerts_per_device_month": round(tally.device_false / device_months, 3),
        "outages_to_flag": tally.outages,
        "outages_missed": tally.outages_missed,
    }
    for kind, key in ((IncidentType.TAP_LEFT_ON, "tap"), (IncidentType.STOVE_LEFT_ON, "stove")):
        past = [
            d - g.normal_max_min
            for o in tally.outcomes
            for g, d in o.delays
            if g.incident is kind and d is not None and g.normal_max_min is not None
        ]
        rows[f"{key}_median_past_normal_min"] = _median(past)
    for kind, key in ((IncidentType.ILLNESS, "illness"), (IncidentType.NIGHT_WANDERING, "wandering")):
        delays = [d for o in tally.outcomes for g, d in o.delays if g.incident is kind]
        rows[f"{key}_found"] = _share(sum(d is not None for d in delays), len(delays))
    return rows


def versus_rule(ours: Tally, rule: Tally) -> dict[str, int]:
    """Per collapse: did carebed raise it before, with (within 5 min) or after the < 10 L / 12 h rule."""
    counts = {"earlier": 0, "same": 0, "later": 0, "neither": 0}
    same = SAME_WITHIN.total_seconds() / 60
    for (_, mine), (_, theirs) in zip(_collapse_delays(ours), _collapse_delays(rule), strict=True):
        if mine is None and theirs is None:
            counts["neither"] += 1
        elif theirs is None or (mine is not None and mine < theirs - same):
            counts["earlier"] += 1
        elif mine is None or mine > theirs + same:
            counts["later"] += 1
        else:
            counts["same"] += 1
    return counts


def home_seeds(profile: str, seed: int, homes: int) -> list[tuple[int, tuple[IncidentType, ...]]]:
    """The seeds and incidents of a profile's homes: a function of the profile's name and the run's seed."""
    rng = random.Random(f"{profile}:{seed}")
    return [(rng.randrange(2**32), incidents_for(rng)) for _ in range(homes)]


def run_profile(
    profile: str,
    plan: MatrixPlan,
    rules: RuleConfig | None = None,
    patterns: PatternConfig | None = None,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One population over every seed of the plan: carebed and the fixed rules, every cell."""
    population = POPULATIONS[profile]
    rules = rules or RuleConfig()
    patterns = patterns or PatternConfig(tz=plan.tz)
    tallies: dict[str, Tally] = {}
    sizes: list[int] = []
    devices = 0
    for seed in plan.seeds:
        for n, (home_seed, incidents) in enumerate(home_seeds(profile, seed, plan.homes), 1):
            case = draw_home(population, f"home-{n:05d}", START, plan.days, home_seed, plan.tz, incidents)
            run = run_case(case, rules, patterns)
            sizes.append(run.state_bytes)
            devices += len(case.kit.devices())
            for name, raised in run.raised.items():
                tallies.setdefault(name, Tally()).add(run, raised)
            if progress is not None:
                progress()
    homes = plan.homes * len(plan.seeds)
    months = homes * plan.days / 30
    device_months = devices * plan.days / 30
    cells = {name: headline(tally, months, device_months) for name, tally in tallies.items()}
    return {
        "profile": profile,
        "description": population.description,
        "held_out": profile in HELD_OUT_PROFILES,
        "seeds": list(plan.seeds),
        "homes": homes,
        "days": plan.days,
        "resident_months": round(months, 2),
        "device_months": round(device_months, 2),
        "carebed": {
            **cells.pop(LEARNED),
            "versus_rule": versus_rule(tallies[LEARNED], tallies[RULE]),
            "state_bytes_max": max(sizes),
            "state_bytes_mean": round(statistics.fmean(sizes)),
            "incidents": summarise(tallies[LEARNED].outcomes, months)["incidents"],
        },
        "baselines": cells,
    }


def run_matrix(
    plan: MatrixPlan,
    rules: RuleConfig | None = None,
    patterns: PatternConfig | None = None,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    return {
        "seeds": list(plan.seeds),
        "homes_per_seed": plan.homes,
        "days": plan.days,
        "profiles": {p: run_profile(p, plan, rules, patterns, progress) for p in plan.profiles},
    }


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def pair(ours: str, theirs: str) -> str:
    return f"{ours} / {theirs}"


def matrix_tables(report: dict[str, Any]) -> Iterable[Table]:
    """Two tables, rows are profiles: the resident's incidents, then false alerts, devices and state."""
    rows = list(report["profiles"].values())
    seeds = ", ".join(map(str, report["seeds"]))
    caption = f"seeds {seeds}; {report['homes_per_seed']} homes × {report['days']} days per seed and profile"
    first = Table(title="Incidents: carebed / fixed rule (< 10 L in 12 h; 2 h of flow)", title_justify="left")
    for column in (
        "profile",
        "collapses",
        "≤ 12 h %",
        "median day min",
        "median night min",
        "vs rule: earlier/same/later",
        "tap past normal",
        "stove past normal",
        "illness %",
        "wandering %",
    ):
        first.add_column(column, justify="left" if column == "profile" else "right")
    second = Table(title="False alerts, devices and state", title_justify="left", caption=caption)
    for column in (
        "profile",
        "false welfare /res-month",
        "false flow /res-month",
        "device alerts /dev-month",
        "of them false",
        "outages missed",
        "state KB",
    ):
        second.add_column(column, justify="left" if column == "profile" else "right")
    for row in rows:
        ours, rule, flow = row["carebed"], row["baselines"][RULE], row["baselines"][FLOW_RULE]
        vs = ours["versus_rule"]
        name = row["profile"] + (" (held out)" if row["held_out"] else "")
        first.add_row(
            name,
            str(ours["collapses"]),
            pair(pct(ours["collapse_found_12h"]), pct(rule["collapse_found_12h"])),
            pair(num(ours["collapse_median_day_min"]), num(rule["collapse_median_day_min"])),
            pair(num(ours["collapse_median_night_min"]), num(rule["collapse_median_night_min"])),
            f"{vs['earlier']}/{vs['same']}/{vs['later']}",
            pair(num(ours["tap_median_past_normal_min"]), num(flow["tap_median_past_normal_min"])),
            pair(num(ours["stove_median_past_normal_min"]), num(flow["stove_median_past_normal_min"])),
            pair(pct(ours["illness_found"]), pct(rule["illness_found"])),
            pair(pct(ours["wandering_found"]), pct(rule["wandering_found"])),
        )
        second.add_row(
            name,
            pair(num(ours["false_welfare_per_resident_month"]), num(rule["false_welfare_per_resident_month"])),
            pair(num(ours["false_flow_per_resident_month"]), num(flow["false_flow_per_resident_month"])),
            num(ours["device_alerts_per_device_month"]),
            num(ours["false_device_alerts_per_device_month"]),
            f"{ours['outages_missed']} of {ours['outages_to_flag']}",
            f"{ours['state_bytes_max'] / 1024:.1f}",
        )
    return (first, second)
