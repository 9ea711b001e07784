"""Metrics read from the database at scrape time, so every replica reports the same truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.models import Alert, AlertStatus, DeviceSeen, Notification, NotificationStatus
from carebed.registry import Device
from carebed.schemas import utc_now


class OpenAlertsCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "carebed_alerting_open_alerts", "Unresolved alerts, by status and severity", labels=["status", "severity"]
        )
        with self._sessions() as session:
            rows = session.execute(
                select(Alert.status, Alert.severity, func.count())
                .where(Alert.status != AlertStatus.RESOLVED)
                .group_by(Alert.status, Alert.severity)
            )
            for status, severity, count in rows:
                gauge.add_metric([status, severity], count)
        yield gauge


class OperationsCollector(Collector):
    """The outbox's backlog and the devices gone quiet: what deploy/prometheus/rules/carebed.yml watches."""

    def __init__(self, sessions: sessionmaker[Session], offline_after: timedelta) -> None:
        self._sessions = sessions
        self._offline_after = offline_after

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utc_now()
        with self._sessions() as session:
            due, oldest = session.execute(
                select(func.count(), func.min(Notification.next_attempt_at)).where(
                    Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= now
                )
            ).one()
            registered = session.scalar(select(func.count()).select_from(Device)) or 0
            # The console's rule (console_api._offline): heard from, online, and within offline_after.
            heard = session.scalar(
                select(func.count())
                .select_from(DeviceSeen)
                .where(DeviceSeen.online.is_(True), DeviceSeen.last_seen >= now - self._offline_after)
            )
        yield GaugeMetricFamily("carebed_alerting_outbox_due", "Notifications due to be sent, not yet claimed", due)
        yield GaugeMetricFamily(
            "carebed_alerting_outbox_oldest_due_seconds",
            "How long the oldest due notification has waited to be sent; 0 when none is due",
            (now - oldest).total_seconds() if oldest else 0.0,
        )
        yield GaugeMetricFamily("carebed_devices_registered", "Devices in the registry", registered)
        yield GaugeMetricFamily(
            "carebed_devices_offline",
            "Registered devices not heard from as online within CAREBED_OFFLINE_AFTER_MIN (wall clock)",
            max(registered - (heard or 0), 0),
        )
