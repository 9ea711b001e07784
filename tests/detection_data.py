"""Seeded simulated homes shared by the detector tests (built once per session: they are pure and cheap)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

from carebed.schemas import Reading
from simulators.residents import IncidentType, Timeline, build_timeline, readings

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, tzinfo=UTC)


@cache
def timeline(days: int, incidents: tuple[IncidentType, ...], seed: int = 5, from_day: int = 10) -> Timeline:
    return build_timeline("home-00001", START, days, seed, TZ, incidents, incidents_from_day=from_day)


@cache
def stream(days: int, incidents: tuple[IncidentType, ...], seed: int = 5, from_day: int = 10) -> tuple[Reading, ...]:
    return tuple(readings(timeline(days, incidents, seed, from_day)))
