"""Pure core of the supervisor dashboard: response times per community, from alert rows.

A response time runs from the alert's creation to its acknowledgement (by anyone, by any
means); the first-message time runs to the first SMS or call that Twilio accepted. Percentiles
are nearest-rank over the period's alerts, which is exact and cheap at a centre's scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AlertTimes:
    community: str
    created_at: datetime
    acked_at: datetime | None
    first_sent_at: datetime | None
    open: bool


@dataclass(slots=True)
class CommunityStats:
    community: str
    alerts: int = 0
    open: int = 0
    ack_p50_s: float | None = None
    ack_p90_s: float | None = None
    ack_max_s: float | None = None
    sent_p50_s: float | None = None
    acked_within_60s: float | None = None
    acked_within_180s: float | None = None
    devices: int = 0
    devices_offline: int = 0
    _ack: list[float] = field(default_factory=list, repr=False)
    _sent: list[float] = field(default_factory=list, repr=False)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values.

    >>> percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90)
    9
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _share(values: Sequence[float], total: int, limit_s: float) -> float | None:
    return sum(1 for v in values if v <= limit_s) / total if total else None


def summarise(alerts: Iterable[AlertTimes], devices: Iterable[tuple[str, bool]]) -> list[CommunityStats]:
    """Stats per community, plus one row "" for all of them; ``devices`` is (community, offline) per device."""
    stats: dict[str, CommunityStats] = {}

    def rows(community: str) -> tuple[CommunityStats, CommunityStats]:
        return stats.setdefault(community, CommunityStats(community)), stats.setdefault("", CommunityStats(""))

    for alert in alerts:
        for row in rows(alert.community):
            row.alerts += 1
            row.open += alert.open
            if alert.acked_at is not None:
                row._ack.append((alert.acked_at - alert.created_at).total_seconds())
            if alert.first_sent_at is not None:
                row._sent.append((alert.first_sent_at - alert.created_at).total_seconds())
    for community, offline in devices:
        for row in rows(community):
            row.devices += 1
            row.devices_offline += offline
    for row in stats.values():
        row.ack_p50_s, row.ack_p90_s = percentile(row._ack, 50), percentile(row._ack, 90)
        row.ack_max_s = max(row._ack, default=None)
        row.sent_p50_s = percentile(row._sent, 50)
        # Unacknowledged alerts count against the share: they were not acknowledged in time.
        row.acked_within_60s = _share(row._ack, row.alerts, 60)
        row.acked_within_180s = _share(row._ack, row.alerts, 180)
    return sorted(stats.values(), key=lambda r: (r.community != "", r.community))
