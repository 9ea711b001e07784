"""Pure core of response-time records: per alert, and per street or community over a period.

Each interval runs from the alert's creation (when the centre knew) to its first accepted
message or call, its acknowledgement (a key press, a reply, or an operator), the responder's
arrival, and its resolution. The telecare industry's targets for answering are 97.5 % within
60 s and 99 % within 180 s (TEC Quality Standards Framework, UK, after EN 50134-7); an alert
never acknowledged counts against both shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from alerting.dashboard import percentile

MILESTONES = ("notified", "acknowledged", "arrived", "resolved")
TARGETS = ((60, 0.975), (180, 0.99))
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    street: str
    community: str
    created_at: datetime
    notified_at: datetime | None
    acked_at: datetime | None
    arrived_at: datetime | None
    resolved_at: datetime | None


def seconds_to(record: AlertRecord) -> dict[str, float | None]:
    """Seconds from creation to each milestone; None for one not reached."""
    reached = (record.notified_at, record.acked_at, record.arrived_at, record.resolved_at)
    return {
        name: (at - record.created_at).total_seconds() if at is not None else None
        for name, at in zip(MILESTONES, reached, strict=True)
    }


@dataclass(slots=True)
class GroupReport:
    street: str
    community: str
    alerts: int = 0
    acked_within_s: dict[int, float] = field(default_factory=dict)
    meets_target: dict[int, bool] = field(default_factory=dict)
    percentiles_s: dict[str, dict[int, float | None]] = field(default_factory=dict)
    _times: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MILESTONES}, repr=False)


def report(records: Iterable[AlertRecord], by: Literal["street", "community"]) -> list[GroupReport]:
    """One row per street (or per community within its street), then a total row with empty names."""
    groups: dict[tuple[str, str], GroupReport] = {}
    for record in records:
        key = (record.street, record.community if by == "community" else "")
        for street, community in (key, ("", "")):
            group = groups.setdefault((street, community), GroupReport(street, community))
            group.alerts += 1
            for name, seconds in seconds_to(record).items():
                if seconds is not None:
                    group._times[name].append(seconds)
    for group in groups.values():
        acked = group._times["acknowledged"]
        for limit_s, target in TARGETS:
            share = sum(1 for s in acked if s <= limit_s) / group.alerts
            group.acked_within_s[limit_s] = share
            group.meets_target[limit_s] = share >= target
        group.percentiles_s = {
            name: {q: percentile(times, q) for q in PERCENTILES} for name, times in group._times.items()
        }
    return sorted(groups.values(), key=lambda g: (g.street == "", g.street, g.community))
