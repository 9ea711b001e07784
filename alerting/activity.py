"""The activity rollup's adapter: readings from MQTT into memory, flushed to the database every few seconds.

This is chart data, not alert data: a reading is acknowledged to the broker as soon as it is
in memory, so a crash loses at most one flush interval of the chart and of "last seen".
Alerts never depend on it, nor wait for it: it is written to the chart database
(`Settings.charts_sqlalchemy_url`), which on SQLite is a file with a write lock of its own.
Buckets older than the retention are deleted as they are flushed.

It runs in a child process of the alerting service. In the same process, decoding every
reading and writing the rollup took the GIL from the alert path often enough to nearly double
an SOS's latency under load (docs/performance.md). The child stops when the service does,
and also when the service dies without a word: its end of a pipe then reads end-of-file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from multiprocessing.connection import Connection

from sqlalchemy import Insert, delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from alerting.models import ActivityBucket, DeviceSeen
from alerting.rollup import ActivityRollup, Seen, Usage
from alerting.urgency import UrgentWork
from carebed import service, topics
from carebed.db import make_engine, make_sessionmaker
from carebed.mqtt import Inbound, MqttClient, Outbound, decode_batch
from carebed.schemas import Reading, utc_now
from carebed.settings import Settings

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)
# Rows per transaction; before each, the writer steps aside while the alert path is busy.
FLUSH_ROWS = 50
STOP_TIMEOUT_S = 30.0


class ActivityProcess:
    """The recorder in a child process, started and stopped with the alerting service."""

    def __init__(self, settings: Settings, urgent: UrgentWork) -> None:
        context = multiprocessing.get_context("spawn")
        self._lifeline, self._child_end = context.Pipe()
        self._process = context.Process(
            target=_run_recorder,
            args=(settings, urgent, self._child_end),
            name="carebed-alerting-activity",
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()
        self._child_end.close()

    def stop(self) -> None:
        """Closing the lifeline tells the child to flush and exit."""
        self._lifeline.close()
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            log.error("activity process did not stop; killed", extra={"pid": self._process.pid})
            self._process.kill()
            self._process.join()


def _run_recorder(settings: Settings, urgent: UrgentWork, lifeline: Connection) -> None:
    stopping = service.start("alerting-activity", settings, None)
    # All of it is bulk work, flushes included: no alert waits for the chart database.
    service.deprioritise_thread(settings.bulk_nice)
    threading.Thread(target=_stop_with_parent, args=(lifeline, stopping), name="lifeline", daemon=True).start()
    engine = make_engine(settings.charts_sqlalchemy_url, bulk=True)  # chart data: see the module docstring
    recorder = ActivityRecorder(settings, make_sessionmaker(engine), urgent)
    recorder.start()
    service.ready()
    stopping.wait()
    recorder.stop()
    engine.dispose()


def _stop_with_parent(lifeline: Connection, stopping: threading.Event) -> None:
    """The parent never writes: recv returns only when its end closes, on purpose or because it died."""
    with contextlib.suppress(EOFError):
        lifeline.recv()
    stopping.set()


class ActivityRecorder:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], urgent: UrgentWork, flush_s: float = 3.0
    ) -> None:
        self._sessions = sessions
        self._urgent = urgent
        self._flush_s = flush_s
        self._rollup = ActivityRollup()
        # Held by the readings lane while it decodes and adds, and by a flush while it drains.
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)
        self.mqtt = MqttClient(settings, client_id="carebed-alerting-activity", bulk=True)
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
        with self._lock:
            for reading in decode_batch(Reading, message):
                self._rollup.add(reading)
        return ()

    def _run(self) -> None:
        while not self._stopping.wait(self._flush_s):
            try:
                self.flush()
            except Exception:
                log.exception("activity flush failed; this interval of chart data is lost")

    def flush(self) -> None:
        """Short transactions, each once the alert path is quiet: a flush never keeps a core from an alert."""
        with self._lock:
            buckets, seen = self._rollup.drain()
        bucket_items, seen_items = list(buckets.items()), list(seen.items())
        for start in range(0, max(len(bucket_items), len(seen_items)), FLUSH_ROWS):
            self._urgent.wait_for_quiet()
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
    rows = [{"device_id": device_id, **sighting._asdict()} for device_id, sighting in seen.items()]
    session.execute(statement, rows)
