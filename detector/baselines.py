"""Pure core of the fixed rules that services use today, kept to compare the learned layer against.

"Less than 0.01 m³ of water in N hours" (Shenzhen and Shanghai: 12 h; K-water: 24 h; a
Japanese pilot: 8 h) and "water or gas flowing without a break for 2 h" (from a meter that sends totals only, the mean
flow between two totals). They honour away
periods like the learned layer does, so a comparison on the same data is fair.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from carebed.schemas import (
    DeviceKind,
    Feedback,
    FeedbackKind,
    Finding,
    FindingCode,
    Reading,
    Severity,
    evidence_of,
)


class _Rule:
    def __init__(self, name: str) -> None:
        self.name = name
        self.away_until: datetime | None = None

    def apply(self, feedback: Feedback) -> None:
        if feedback.kind is FeedbackKind.AWAY:
            self.away_until = feedback.until or datetime.max.replace(tzinfo=feedback.ts.tzinfo)
        elif feedback.kind is FeedbackKind.BACK:
            self.away_until = None

    def advance(self, now: datetime) -> list[Finding]:
        return []

    def _away(self, now: datetime) -> bool:
        return self.away_until is not None and now < self.away_until

    def _finding(
        self, reading: Reading, code: FindingCode, onset: datetime, summary: str, **evidence: object
    ) -> Finding:
        return Finding(
            id=f"{reading.home_id}:{self.name}:{code.value}:{onset.isoformat()}",
            home_id=reading.home_id,
            device_id=reading.device_id,
            code=code,
            severity=Severity.HIGH,
            ts=onset,
            detected_at=reading.ts,
            summary=summary,
            evidence=evidence_of(rule=self.name, **evidence),
        )


class NoWaterRule(_Rule):
    """Inactivity when the water meter counts under ``litres`` in the last ``window``."""

    def __init__(self, window: timedelta, litres: float = 10.0) -> None:
        super().__init__(f"no_water_{window.total_seconds() / 3600:.0f}h")
        self.window = window
        self.litres = litres
        self.usage: deque[tuple[datetime, float]] = deque()
        self.total = 0.0
        self.last_volume: float | None = None
        self.first_ts: datetime | None = None
        self.last_use: datetime | None = None
        self.fired = False

    def process(self, reading: Reading) -> list[Finding]:
        if reading.device_kind is not DeviceKind.WATER_METER or reading.water_volume_l is None:
            return []
        ts, volume = reading.ts, reading.water_volume_l
        self.first_ts = self.first_ts or ts
        used = volume - self.last_volume if self.last_volume is not None and volume >= self.last_volume else 0.0
        self.last_volume = volume
        if used > 0:
            self.usage.append((ts, used))
            self.total += used
            self.last_use = ts
        while self.usage and self.usage[0][0] <= ts - self.window:
            self.total -= self.usage.popleft()[1]
        if self.total >= self.litres:
            self.fired = False
            return []
        if self.fired or ts - self.first_ts < self.window or self._away(ts):
            return []
        self.fired = True
        onset = self.last_use or self.first_ts
        hours = self.window.total_seconds() / 3600
        return [
            self._finding(
                reading, FindingCode.INACTIVITY, onset, f"Under {self.litres:.0f} L of water in {hours:.0f} h"
            )
        ]


class ContinuousFlowRule(_Rule):
    """Long flow when a meter reports flow at every reading for ``limit``."""

    def __init__(self, limit: timedelta) -> None:
        super().__init__(f"continuous_flow_{limit.total_seconds() / 3600:.0f}h")
        self.limit = limit
        self.since: dict[DeviceKind, datetime | None] = {}
        self.fired: dict[DeviceKind, bool] = {}
        self.totals: dict[DeviceKind, tuple[datetime, float]] = {}

    def process(self, reading: Reading) -> list[Finding]:
        kind = reading.device_kind
        if kind is DeviceKind.WATER_METER:
            rate = self._rate(reading, reading.water_flow_l_min, reading.water_volume_l, 1.0)
            flowing, code = rate > 0.1, FindingCode.LONG_WATER_FLOW
        elif kind is DeviceKind.GAS_SENSOR:
            rate = self._rate(reading, reading.gas_flow_m3_h, reading.gas_volume_m3, 60.0)
            flowing, code = rate > 0.02, FindingCode.LONG_GAS_FLOW
        else:
            return []
        if not flowing:
            self.since[kind] = None
            self.fired[kind] = False
            return []
        since = self.since.get(kind) or reading.ts
        self.since[kind] = since
        if self.fired.get(kind) or reading.ts - since < self.limit or self._away(reading.ts):
            return []
        self.fired[kind] = True
        return [self._finding(reading, code, since, f"Flowing without a break for {self.limit} or more")]

    def _rate(self, reading: Reading, flow: float | None, volume: float | None, per_minute: float) -> float:
        """The reported flow, or for a meter that sends totals only, the mean flow since its last total."""
        last = self.totals.get(reading.device_kind)
        if volume is not None:
            self.totals[reading.device_kind] = (reading.ts, volume)
        if flow is not None:
            return flow
        if volume is None or last is None or reading.ts <= last[0] or volume < last[1]:
            return 0.0
        return (volume - last[1]) / ((reading.ts - last[0]).total_seconds() / 60) * per_minute


def fixed_rules() -> dict[str, NoWaterRule | ContinuousFlowRule]:
    rules: list[NoWaterRule | ContinuousFlowRule] = [
        NoWaterRule(timedelta(hours=12)),
        NoWaterRule(timedelta(hours=24)),
        NoWaterRule(timedelta(hours=8)),
        ContinuousFlowRule(timedelta(hours=2)),
    ]
    return {rule.name: rule for rule in rules}
