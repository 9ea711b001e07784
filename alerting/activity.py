"""The activity rollup's adapter: readings from MQTT into memory, flushed to the database every few seconds.

This is chart data, not alert data: a reading is acknowledged to the broker as soon as it is
in memory, so a crash loses at most one flush interval of the chart and of "last seen".
Alerts never depend on it. Buckets older than the retention are deleted as they are flushed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import Insert, delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from alerting.models import ActivityBucket, DeviceSeen
from alerting.rollup import ActivityRollup, Seen, Usage
from carebed import topics
from carebed.mqtt import Inbound, MqttClient, Outbound, decode_batch
from carebed.schemas import Reading, utc_now
from carebed.settings import Settings

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)
FLUSH_ROWS = 250


class ActivityRecorder:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], flush_s: float = 3.0) -> None:
        self._sessions = sessions
        self._flush_s = flush_s
        self._rollup = ActivityRollup()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)
        self.mqtt = MqttClient(settings, client_id="carebed-alerting-activity")
        self.mqtt.subscribe(topics.READINGS, self.handle)

    def start(self) -> None:
        self.mqtt.start()
        self._thread.start()

    def stop(self) -> None:
        self.mqtt.stop()
        self._stopping.set()
        self._thread.join(timeout=10)
        self.flush()

    def handle(self, message: Inbound) -> Sequence[Outbound]:
        readings = decode_batch(Reading, message)
        with self._lock:
            for reading in readings:
                self._rollup.add(reading)
        return ()

    def _run(self) -> None:
        while not self._stopping.wait(self._flush_s):
            try:
                self.flush()
            except Exception:
                log.exception("activity flush failed; this interval of chart data is lost")

    def flush(self) -> None:
        """Short transactions, so an alert being opened never waits long for SQLite's write lock."""
        with self._lock:
            buckets, seen = self._rollup.drain()
        bucket_items, seen_items = list(buckets.items()), list(seen.items())
        for start in range(0, max(len(bucket_items), len(seen_items)), FLUSH_ROWS):
            with self._sessions.begin() as session:
                _add_buckets(session, dict(bucket_items[start : start + FLUSH_ROWS]))
                _record_seen(session, dict(seen_items[start : start + FLUSH_ROWS]))
        if buckets:
            with self._sessions.begin() as session:
                session.execute(delete(ActivityBucket).where(ActivityBucket.start < utc_now() - RETENTION))


def _upsert(session: Session, model: type[ActivityBucket] | type[DeviceSeen]) -> Insert:
    """INSERT … ON CONFLICT for the session's database: one statement for many rows, whatever exists."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(model.__table__)


def _add_buckets(session: Session, buckets: dict[tuple[str, datetime], Usage]) -> None:
    if not buckets:
        return
    statement = _upsert(session, ActivityBucket)
    added = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[ActivityBucket.home_id, ActivityBucket.start],
        set_={
            "water_l": ActivityBucket.water_l + added.water_l,
            "gas_m3": ActivityBucket.gas_m3 + added.gas_m3,
            "steps": ActivityBucket.steps + added.steps,
            "readings": ActivityBucket.readings + added.readings,
        },
    )
    rows = [{"home_id": home_id, "start": start, **asdict(usage)} for (home_id, start), usage in buckets.items()]
    session.execute(statement, rows)


def _record_seen(session: Session, seen: dict[str, Seen]) -> None:
    """A sighting older than the one stored (a late, re-delivered reading) changes nothing."""
    if not seen:
        return
    statement = _upsert(session, DeviceSeen)
    new = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[DeviceSeen.device_id],
        set_={
            "home_id": new.home_id,
            "last_seen": new.last_seen,
            "online": new.online,
            "battery_pct": func.coalesce(new.battery_pct, DeviceSeen.battery_pct),
        },
        where=DeviceSeen.last_seen <= new.last_seen,
    )
    rows = [{"device_id": device_id, **asdict(sighting)} for device_id, sighting in seen.items()]
    session.execute(statement, rows)
