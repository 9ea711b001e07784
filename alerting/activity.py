"""The activity rollup's adapter: readings from MQTT into memory, flushed to the database every few seconds.

This is chart data, not alert data: a reading is acknowledged to the broker as soon as it is
in memory, so a crash loses at most one flush interval of the chart and of "last seen".
Alerts never depend on it. Buckets older than the retention are deleted as they are flushed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from alerting.models import ActivityBucket, DeviceSeen
from alerting.rollup import ActivityRollup, Seen, Usage
from carebed import topics
from carebed.mqtt import Inbound, MqttClient, Outbound, decode_batch
from carebed.schemas import Reading, utc_now
from carebed.settings import Settings

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)


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
        with self._lock:
            buckets, seen = self._rollup.drain()
        if not buckets and not seen:
            return
        with self._sessions.begin() as session:
            _add_buckets(session, buckets)
            _record_seen(session, seen)
            session.execute(delete(ActivityBucket).where(ActivityBucket.start < utc_now() - RETENTION))


def _add_buckets(session: Session, buckets: dict[tuple[str, datetime], Usage]) -> None:
    """Read-modify-write is safe here: this thread is the only writer of the table."""
    if not buckets:
        return
    keys = list(buckets)
    existing = {
        (row.home_id, row.start): row
        for row in session.scalars(
            select(ActivityBucket).where(tuple_(ActivityBucket.home_id, ActivityBucket.start).in_(keys))
        )
    }
    for (home_id, start), usage in buckets.items():
        row = existing.get((home_id, start))
        if row is None:
            row = ActivityBucket(home_id=home_id, start=start, water_l=0.0, gas_m3=0.0, steps=0, readings=0)
            session.add(row)
        row.water_l += usage.water_l
        row.gas_m3 += usage.gas_m3
        row.steps += usage.steps
        row.readings += usage.readings


def _record_seen(session: Session, seen: dict[str, Seen]) -> None:
    if not seen:
        return
    rows = {row.device_id: row for row in session.scalars(select(DeviceSeen).where(DeviceSeen.device_id.in_(seen)))}
    for device_id, sighting in seen.items():
        row = rows.get(device_id)
        if row is None:
            session.add(
                DeviceSeen(
                    device_id=device_id,
                    home_id=sighting.home_id,
                    last_seen=sighting.last_seen,
                    battery_pct=sighting.battery_pct,
                    online=sighting.online,
                )
            )
        elif sighting.last_seen >= row.last_seen:
            row.home_id, row.last_seen, row.online = sighting.home_id, sighting.last_seen, sighting.online
            if sighting.battery_pct is not None:
                row.battery_pct = sighting.battery_pct
