"""The activity rollup's writer on SQLite and PostgreSQL: flushes add up, and a late sighting never wins."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from alerting.activity import ActivityRecorder
from alerting.models import ActivityBucket, DeviceSeen
from alerting.urgency import UrgentWork
from carebed import topics
from carebed.db import SQLITE_BULK_CHECKPOINT_PAGES, make_engine, make_sessionmaker, migrate
from carebed.mqtt import Inbound
from carebed.postgres import create_database
from carebed.schemas import DeviceKind, Reading, dump, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel

pytestmark = pytest.mark.integration
# Within the rollup's retention, whenever the tests run: older buckets are deleted as they are flushed.
T0 = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def batch(*readings: tuple[float, dict[str, float]]) -> Inbound:
    """Water-meter readings at (minute, values), as the gateway batches them."""
    items = [
        dump(
            Reading.model_validate(
                {
                    "home_id": "h-1",
                    "device_id": "m-1",
                    "device_kind": DeviceKind.WATER_METER,
                    "channel": DeviceChannel.TELEMETRY,
                    "ts": T0 + timedelta(minutes=minute),
                    "received_at": T0 + timedelta(minutes=minute),
                    **values,
                }
            )
        )
        for minute, values in readings
    ]
    return Inbound(topics.READINGS, b"[" + b",".join(items) + b"]", retain=False)


def test_flushes_add_to_the_buckets_and_the_newest_sighting_stays(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    recorder = ActivityRecorder(settings, sessions, UrgentWork())
    recorder.handle(batch((0, {"water_volume_l": 100, "battery_pct": 90}), (5, {"water_volume_l": 110})))
    recorder.flush()
    recorder.handle(batch((10, {"water_volume_l": 130})))
    recorder.flush()
    restarted = ActivityRecorder(settings, sessions, UrgentWork())
    restarted.handle(batch((2, {"water_volume_l": 104, "battery_pct": 50})))
    restarted.flush()

    with sessions() as session:
        bucket = session.scalars(select(ActivityBucket)).one()
        seen = session.get(DeviceSeen, "m-1")
    assert (bucket.start, bucket.water_l, bucket.readings) == (T0, 30.0, 4)
    assert seen is not None
    assert (seen.last_seen, seen.battery_pct, seen.online) == (T0 + timedelta(minutes=10), 90.0, True)


@pytest.mark.parametrize(("bulk", "synchronous_commit"), [(False, "on"), (True, "off")])
def test_only_chart_data_commits_before_postgresql_has_its_wal_on_disk(
    postgres: str, bulk: bool, synchronous_commit: str
) -> None:
    engine = make_engine(create_database(postgres, f"t_{secrets.token_hex(6)}"), bulk=bulk)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == synchronous_commit
    finally:
        engine.dispose()


@pytest.mark.parametrize("bulk", [False, True])
def test_on_sqlite_the_chart_writer_copies_the_wal_back_not_the_alert_path(tmp_path: Path, bulk: bool) -> None:
    """The commit that takes the WAL past its limit copies it into the database: an alert's commit should not."""
    engine = make_engine(f"sqlite:///{tmp_path / 'carebed.db'}", bulk=bulk)
    pages = SQLITE_BULK_CHECKPOINT_PAGES + 500
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE scratch (payload BLOB)"))
        for _ in range(pages // 10):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO scratch VALUES (randomblob(4000))"), [{}] * 10)
        with engine.connect() as connection:
            _, wal_frames, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    finally:
        engine.dispose()
    if bulk:
        assert wal_frames < SQLITE_BULK_CHECKPOINT_PAGES  # copied back, and the WAL started over
    else:
        assert wal_frames >= pages  # left for the bulk writer
