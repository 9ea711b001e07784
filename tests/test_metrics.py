"""Metrics the alert rules watch (deploy/prometheus/rules/carebed.yml), read from a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.metrics import OperationsCollector
from alerting.models import Alert, DeviceSeen, Notification, NotificationStatus
from carebed.db import make_engine, make_sessionmaker, upgrade
from carebed.registry import Device, import_registry
from carebed.schemas import utc_now
from carebed.settings import Settings
from simulators.homes import build_registry

OFFLINE_AFTER = timedelta(minutes=30)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The real layout on SQLite: the registry and alerts in one file, the chart data in another."""
    settings = Settings(data_dir=tmp_path)
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    engine, charts = make_engine(settings.sqlalchemy_url), make_engine(settings.charts_sqlalchemy_url)
    factory = make_sessionmaker(engine, charts=charts)
    with factory.begin() as session:
        import_registry(session, build_registry(homes=2, seed=5))
    yield factory
    engine.dispose()
    charts.dispose()


def scrape(factory: sessionmaker[Session]) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(OperationsCollector(factory, OFFLINE_AFTER))
    return {sample.name: sample.value for family in registry.collect() for sample in family.samples}


def notification(alert: Alert, status: NotificationStatus, due_ago: timedelta) -> Notification:
    return Notification(
        alert=alert, channel="sms", recipient="+8613900000000", language="zh-CN", body="x", status=status,
        next_attempt_at=utc_now() - due_ago,
    )  # fmt: skip


def test_an_idle_outbox_and_silent_devices(sessions: sessionmaker[Session]) -> None:
    metrics = scrape(sessions)
    assert metrics["carebed_alerting_outbox_due"] == 0
    assert metrics["carebed_alerting_outbox_oldest_due_seconds"] == 0
    assert metrics["carebed_devices_registered"] > 2
    # Never heard from counts as offline, as on the console.
    assert metrics["carebed_devices_offline"] == metrics["carebed_devices_registered"]


def test_the_backlog_and_the_offline_devices_are_counted(sessions: sessionmaker[Session]) -> None:
    now = utc_now()
    with sessions.begin() as session:
        alert = Alert(home_id="x", code="sos", severity="critical", summary="s", first_ts=now, last_ts=now, evidence={})
        session.add(alert)
        session.add(notification(alert, NotificationStatus.PENDING, timedelta(minutes=3)))
        session.add(notification(alert, NotificationStatus.PENDING, timedelta(seconds=10)))
        session.add(notification(alert, NotificationStatus.PENDING, -timedelta(minutes=5)))  # a retry not yet due
        session.add(notification(alert, NotificationStatus.SENT, timedelta(hours=1)))
    registered = scrape(sessions)["carebed_devices_registered"]
    with sessions.begin() as session:
        fresh, stale, gone = session.scalars(select(Device.id).limit(3)).all()
        session.add(DeviceSeen(device_id=fresh, home_id="h", last_seen=now - timedelta(minutes=5), online=True))
        session.add(DeviceSeen(device_id=stale, home_id="h", last_seen=now - timedelta(hours=2), online=True))
        session.add(DeviceSeen(device_id=gone, home_id="h", last_seen=now, online=False))
    metrics = scrape(sessions)
    assert metrics["carebed_alerting_outbox_due"] == 2
    assert 180 <= metrics["carebed_alerting_outbox_oldest_due_seconds"] < 240
    assert metrics["carebed_devices_offline"] == registered - 1
