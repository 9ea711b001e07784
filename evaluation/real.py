"""Real homes: public datasets replayed untouched, then cut at random moments as collapses.

The protocol of issue 21: a "collapse" is the home's fixture use stopping at a random moment
(after three days of history, never while the resident is known to be out); the meters go on
reporting zero for 24 h. carebed and the fixed rules see the same data; the untouched months
give the false alerts. ``load`` is the only function here that reads files.
"""

from __future__ import annotations

import math
import random
import re
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from rich.table import Table

from detector.patterns import PatternConfig
from detector.rules import RuleConfig
from evaluation.core import LEARNED
from evaluation.datasets import kasteren, placelab
from evaluation.datasets.homes import RealHome
from evaluation.matrix import FLOW_RULE, RULE, Tally, headline, num, pair, pct, run_case, versus_rule
from evaluation.populations import HomeCase, Kit
from simulators.residents import GroundTruth, IncidentType, Timeline

DATASETS = ("kasteren", "placelab")
HISTORY = timedelta(days=3)
COLLAPSE_LASTS = timedelta(hours=24)


def load(spec: str) -> RealHome:
    """``kasteren:DIR`` (kasterenSenseData.txt, kasterenActData.txt) or ``placelab:DIR`` (one subject's folder)."""
    kind, _, folder = spec.partition(":")
    path = Path(folder)
    if kind == "kasteren":
        acts = path / "kasterenActData.txt"
        with (path / "kasterenSenseData.txt").open(encoding="latin-1") as sensors:
            activities = acts.read_text(encoding="latin-1").splitlines() if acts.exists() else []
            return kasteren.read(sensors, activities, home_id=_home_id(kind, path))
    if kind == "placelab":
        with (
            (path / "sensors.csv").open(encoding="latin-1") as sensors,
            (path / "activities_data.csv").open(encoding="latin-1") as data,
        ):
            return placelab.read(sensors, data, home_id=_home_id(kind, path))
    raise ValueError(f"unknown dataset {kind!r}: use one of {', '.join(DATASETS)} as NAME:DIR")


def _home_id(kind: str, path: Path) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", path.resolve().name.lower()).strip("-.")
    return (name if name.startswith(kind) else f"{kind}-{name}")[:64]


def kit_of(t: Timeline) -> Kit:
    """A water meter (and a gas meter if the data has gas) every 5 minutes with a flow rate; no wearable."""
    return Kit(wearable=False, gas=any(v > 0 for v in t.gas_m3))


def truncated(t: Timeline, cut: datetime, tz: tzinfo) -> HomeCase:
    """The home until ``cut``, then 24 h of meters reporting nothing: a collapse with its ground truth."""
    days = math.ceil((cut + COLLAPSE_LASTS - t.start) / timedelta(days=1))
    out = Timeline(t.home_id, t.profile, t.start, days)
    last = min(t.slot_of(cut), t.slots)
    out.water_l[:last] = t.water_l[:last]
    out.gas_m3[:last] = t.gas_m3[:last]
    out.away = [a for a in t.away if a.end <= cut]
    hour = cut.astimezone(tz).hour
    kind = IncidentType.COLLAPSE_DAY if 8 <= hour < 20 else IncidentType.COLLAPSE_NIGHT
    out.incidents = [GroundTruth(t.home_id, kind, cut, cut + COLLAPSE_LASTS)]
    return HomeCase(out, kit_of(t), {"cut": cut.isoformat()})


def cuts(t: Timeline, home: RealHome, tz: tzinfo, n: int, rng: random.Random) -> list[datetime]:
    """``n`` random moments after three days of history, at home, while the data still covers the home."""
    assert home.last is not None
    first = t.start + HISTORY
    end = home.last.replace(tzinfo=tz) - timedelta(hours=1)
    span = (end - first).total_seconds()
    out: list[datetime] = []
    for _ in range(50 * n):
        if len(out) == n or span <= 0:
            break
        at = first + timedelta(seconds=rng.uniform(0, span))
        at = at.replace(second=0, microsecond=0)
        if not any(a.start - timedelta(hours=1) <= at <= a.end for a in t.away):
            out.append(at)
    return sorted(out)


def run_real(
    homes: list[RealHome], tz: tzinfo, per_home: int, seed: int, rules: RuleConfig, patterns: PatternConfig
) -> dict[str, Any]:
    """Every home untouched (false alerts), then ``per_home`` truncations each (collapses); per home and pooled."""
    rng = random.Random(seed)
    report: dict[str, Any] = {"seed": seed, "truncations_per_home": per_home, "homes": {}}
    pooled_cut: dict[str, Tally] = {}
    pooled_whole: dict[str, Tally] = {}
    months = device_months = 0.0
    cut_count = 0
    for home in homes:
        t = home.timeline(tz)
        whole = run_case(HomeCase(t, kit_of(t)), rules, patterns)
        untouched = {name: Tally() for name in whole.raised}
        for name, raised in whole.raised.items():
            untouched[name].add(whole, raised)
            pooled_whole.setdefault(name, Tally()).add(whole, raised)
        at_cut: dict[str, Tally] = {name: Tally() for name in whole.raised}
        moments = cuts(t, home, tz, per_home, rng)
        for cut in moments:
            run = run_case(truncated(t, cut, tz), rules, patterns)
            for name, raised in run.raised.items():
                at_cut[name].add(run, raised)
                pooled_cut.setdefault(name, Tally()).add(run, raised)
        home_months = t.days / 30
        home_device_months = home_months * len(kit_of(t).devices())
        months += home_months
        device_months += home_device_months
        cut_count += len(moments)
        report["homes"][home.home_id] = {
            "days": t.days,
            "water_l_per_day": round(sum(t.water_l) / t.days, 1),
            "gas": kit_of(t).gas,
            "declared_away": len(t.away),
            "skipped": dict(home.skipped),
            **_cells(at_cut, untouched, home_months, home_device_months),
        }
    report["pooled"] = {"truncations": cut_count, **_cells(pooled_cut, pooled_whole, months, device_months)}
    return report


def _cells(cut: dict[str, Tally], whole: dict[str, Tally], months: float, device_months: float) -> dict[str, Any]:
    def collapse(name: str) -> dict[str, Any]:
        cells = headline(cut[name], 1.0, 1.0)
        return {k: v for k, v in cells.items() if k.startswith("collapse")}

    def false(name: str) -> dict[str, Any]:
        cells = headline(whole[name], months, device_months)
        keys = ("false_welfare_per_resident_month", "false_flow_per_resident_month", "device_alerts_per_device_month")
        return {k: cells[k] for k in keys}

    return {
        "carebed": {**collapse(LEARNED), **false(LEARNED), "versus_rule": versus_rule(cut[LEARNED], cut[RULE])},
        "baselines": {name: {**collapse(name), **false(name)} for name in cut if name != LEARNED},
    }


def real_table(report: dict[str, Any]) -> Table:
    table = Table(
        title=f"Real homes, {report['pooled']['truncations']} cuts (seed {report['seed']}): carebed / fixed rule",
        title_justify="left",
    )
    for column in (
        "home",
        "days",
        "cuts",
        "≤ 12 h %",
        "median day min",
        "median night min",
        "vs rule: earlier/same/later",
        "false welfare /res-month",
        "false flow /res-month",
    ):
        table.add_column(column, justify="left" if column == "home" else "right")
    rows = [*report["homes"].items(), ("pooled", report["pooled"])]
    for name, row in rows:
        ours, rule, flow = row["carebed"], row["baselines"][RULE], row["baselines"][FLOW_RULE]
        vs = ours["versus_rule"]
        table.add_row(
            name,
            str(row.get("days", "")),
            str(ours["collapses"]),
            pair(pct(ours["collapse_found_12h"]), pct(rule["collapse_found_12h"])),
            pair(num(ours["collapse_median_day_min"]), num(rule["collapse_median_day_min"])),
            pair(num(ours["collapse_median_night_min"]), num(rule["collapse_median_night_min"])),
            f"{vs['earlier']}/{vs['same']}/{vs['later']}",
            pair(num(ours["false_welfare_per_resident_month"]), num(rule["false_welfare_per_resident_month"])),
            pair(num(ours["false_flow_per_resident_month"]), num(flow["false_flow_per_resident_month"])),
        )
    return table
