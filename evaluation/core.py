"""Pure core of `carebed eval`: simulated homes in memory, the detector in event time, scored against ground truth.

No broker and no JSON: readings are built directly and fed to the learned layer and to the
fixed rules that services use today, on the same data. Operators are simulated too: a
declared trip or hospital stay reaches the detector as away feedback, and a welfare finding
that matches no incident gets "false alarm" feedback half an hour later.
"""

from __future__ import annotations

import heapq
import pickle
import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table

from carebed.schemas import WELFARE_CODES, Feedback, FeedbackKind, Finding, FindingCode
from detector.base import Detector
from detector.baselines import fixed_rules
from detector.patterns import HomePatterns, PatternConfig
from simulators.residents import GroundTruth, IncidentType, Timeline, build_timeline, readings

DETECTED_BY: dict[IncidentType, frozenset[FindingCode]] = {
    IncidentType.COLLAPSE_DAY: frozenset({FindingCode.INACTIVITY}),
    IncidentType.COLLAPSE_NIGHT: frozenset({FindingCode.INACTIVITY}),
    IncidentType.TAP_LEFT_ON: frozenset({FindingCode.LONG_WATER_FLOW}),
    IncidentType.STOVE_LEFT_ON: frozenset({FindingCode.LONG_GAS_FLOW}),
    IncidentType.NIGHT_WANDERING: frozenset({FindingCode.NIGHT_WANDERING}),
    IncidentType.ILLNESS: frozenset({FindingCode.ACTIVITY_DECLINE}),
}
LEARNED = "carebed"
GRACE = timedelta(hours=6)
OPERATOR_CHECKS_AFTER = timedelta(minutes=30)
START = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EvalPlan:
    homes: int
    days: int
    seed: int
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))


@dataclass(slots=True)
class Outcome:
    """What one detector did on one home: the delay per incident (None if missed) and its false alarms."""

    delays: list[tuple[GroundTruth, float | None]] = field(default_factory=list)
    false_alarms: list[Finding] = field(default_factory=list)


def incidents_for(rng: random.Random) -> tuple[IncidentType, ...]:
    """Two different incidents per home, so every type gets a fair share of homes."""
    return tuple(rng.sample(list(IncidentType), 2))


def _explained(finding: Finding, truth: list[GroundTruth]) -> bool:
    return any(g.onset <= finding.detected_at <= g.end + GRACE for g in truth)


def _score(findings: list[Finding], truth: list[GroundTruth]) -> Outcome:
    outcome = Outcome()
    for g in truth:
        hits = [
            f.detected_at
            for f in findings
            if f.code in DETECTED_BY[g.incident] and g.onset <= f.detected_at <= g.end + GRACE
        ]
        delay = (min(hits) - g.onset).total_seconds() / 60 if hits else None
        outcome.delays.append((g, delay))
    outcome.false_alarms = [f for f in findings if not _explained(f, truth)]
    return outcome


def run_home(timeline: Timeline, config: PatternConfig) -> tuple[dict[str, Outcome], int]:
    """Feed one home's readings to the learned layer and the fixed rules; return their outcomes and the state size."""
    learned = HomePatterns(timeline.home_id, config)
    detectors: dict[str, Detector] = {LEARNED: learned, **fixed_rules()}
    found: dict[str, list[Finding]] = {name: [] for name in detectors}
    feedback = [(fb.ts, n, fb) for n, fb in enumerate(declared_away(timeline))]
    heapq.heapify(feedback)
    serial = len(feedback)
    for reading in readings(timeline):
        while feedback and feedback[0][0] <= reading.ts:
            _, _, fb = heapq.heappop(feedback)
            for detector in detectors.values():
                detector.apply(fb)
        for name, detector in detectors.items():
            for finding in detector.process(reading):
                if finding.code not in WELFARE_CODES:
                    continue
                found[name].append(finding)
                if name == LEARNED and not _explained(finding, timeline.incidents):
                    serial += 1
                    at = finding.detected_at + OPERATOR_CHECKS_AFTER
                    heapq.heappush(feedback, (at, serial, false_alarm(timeline, finding, at)))
    outcomes = {name: _score(findings, timeline.incidents) for name, findings in found.items()}
    return outcomes, len(pickle.dumps(learned, protocol=pickle.HIGHEST_PROTOCOL))


def _feedback(timeline: Timeline, kind: FeedbackKind, ts: datetime, until: datetime | None) -> Feedback:
    return Feedback(
        id=f"{timeline.home_id}:{kind.value}:{ts.isoformat()}", home_id=timeline.home_id, kind=kind, ts=ts, until=until
    )


def false_alarm(timeline: Timeline, finding: Finding, at: datetime) -> Feedback:
    return Feedback(
        id=f"false:{finding.id}", home_id=timeline.home_id, kind=FeedbackKind.FALSE_ALARM, ts=at, code=finding.code
    )


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1], 1)


def summarise(outcomes: Iterable[Outcome], resident_months: float) -> dict[str, Any]:
    """Detection rate, median and p90 delay per incident type, and false welfare alerts per resident-month."""
    by_type: dict[IncidentType, list[float | None]] = {t: [] for t in IncidentType}
    past_normal: dict[IncidentType, list[float]] = {t: [] for t in IncidentType}
    false_alarms = 0
    by_code: dict[str, int] = {}
    for outcome in outcomes:
        false_alarms += len(outcome.false_alarms)
        for finding in outcome.false_alarms:
            by_code[finding.code.value] = by_code.get(finding.code.value, 0) + 1
        for g, delay in outcome.delays:
            by_type[g.incident].append(delay)
            if delay is not None and g.normal_max_min is not None:
                past_normal[g.incident].append(delay - g.normal_max_min)
    incidents: dict[str, dict[str, Any]] = {}
    for kind, delays in by_type.items():
        hit = sorted(d for d in delays if d is not None)
        row: dict[str, Any] = {
            "count": len(delays),
            "detected": round(len(hit) / len(delays), 3) if delays else None,
            "median_delay_min": _quantile(hit, 0.5),
            "p90_delay_min": _quantile(hit, 0.9),
            "within_3h": round(sum(d <= 180 for d in hit) / len(delays), 3) if delays else None,
        }
        if past_normal[kind]:
            row["median_past_normal_min"] = _quantile(past_normal[kind], 0.5)
            row["p90_past_normal_min"] = _quantile(past_normal[kind], 0.9)
        incidents[kind.value] = row
    return {
        "incidents": incidents,
        "false_alerts": false_alarms,
        "false_alerts_by_code": by_code,
        "false_alerts_per_resident_month": round(false_alarms / resident_months, 3),
    }


def declared_away(timeline: Timeline) -> list[Feedback]:
    """The away feedback an operator would have entered for the trips and hospital stays that were declared."""
    return [_feedback(timeline, FeedbackKind.AWAY, a.start, a.end) for a in timeline.away if a.declared]


def evaluate(
    plan: EvalPlan,
    progress: Callable[[int], None] | None = None,
    on_home: Callable[[Timeline], None] | None = None,
    config: PatternConfig | None = None,
) -> dict[str, Any]:
    """Simulate ``plan.homes`` homes for ``plan.days`` days and score the learned layer and the fixed rules.

    ``on_home`` sees each home's timeline, e.g. to write its readings and ground truth to files; ``config``
    is the learned layer's (the service's settings, by default the built-in ones).
    """
    rng = random.Random(plan.seed)
    config = config or PatternConfig(tz=plan.tz)
    results: dict[str, list[Outcome]] = {}
    state_bytes: list[int] = []
    for n in range(1, plan.homes + 1):
        home_id = f"home-{n:05d}"
        timeline = build_timeline(home_id, START, plan.days, rng.randrange(2**32), plan.tz, incidents_for(rng))
        if on_home is not None:
            on_home(timeline)
        outcomes, size = run_home(timeline, config)
        state_bytes.append(size)
        for name, outcome in outcomes.items():
            results.setdefault(name, []).append(outcome)
        if progress is not None:
            progress(n)
    months = plan.homes * plan.days / 30
    report = summarise(results.pop(LEARNED), months)
    return {
        "homes": plan.homes,
        "days": plan.days,
        "seed": plan.seed,
        "resident_months": round(months, 2),
        **report,
        "state_bytes_per_home": max(state_bytes),
        "state_bytes_mean": round(statistics.fmean(state_bytes)),
        "baselines": {name: summarise(outcomes, months) for name, outcomes in results.items()},
    }


def _cell(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:g}{unit}"


def report_tables(report: dict[str, Any]) -> list[Table]:
    """One table per detector, the learned layer first; fixed rules show only the incidents they can detect."""
    tables = []
    for name, rep in [(LEARNED, report), *report["baselines"].items()]:
        title = f"{name}: {rep['false_alerts_per_resident_month']:g} false welfare alerts per resident-month"
        table = Table(title=title, title_justify="left")
        for column in ("incident", "n", "detected", "median delay", "p90 delay", "≤ 3 h", "past normal"):
            table.add_column(column, justify="left" if column == "incident" else "right")
        for kind, row in rep["incidents"].items():
            if name != LEARNED and not row["detected"]:
                continue
            table.add_row(
                kind,
                str(row["count"]),
                _cell(None if row["detected"] is None else round(100 * row["detected"], 1), " %"),
                _cell(row["median_delay_min"], " min"),
                _cell(row["p90_delay_min"], " min"),
                _cell(None if row["within_3h"] is None else round(100 * row["within_3h"], 1), " %"),
                _cell(row.get("median_past_normal_min"), " min"),
            )
        tables.append(table)
    tables[0].caption = (
        f"{report['homes']} homes × {report['days']} days, seed {report['seed']}: {report['resident_months']:g}"
        f" resident-months; learned state ≤ {report['state_bytes_per_home']:,} bytes per home (pickled)"
    )
    return tables
