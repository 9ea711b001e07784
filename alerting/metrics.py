"""Metrics read from the database at scrape time, so every replica reports the same truth."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.models import Alert, AlertStatus


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
