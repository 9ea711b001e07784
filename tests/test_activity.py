"""The activity rollup's writer on SQLite and PostgreSQL: flushes add up, a late sighting never wins, no alert waits."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from alerting.activity import ActivityRecorder
from alerting.models import ActivityBucket, AuditEntry, DeviceSeen
from alerting.urgency import UrgentWork
from carebed import topics
from carebed.db import History, make_engine, make_sessionmaker, migrate, upgrade
from carebed.mqtt import Inbound
from carebed.schemas import DeviceKind, Reading, dump, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from carebed_app.postgres import create_database

pytestmark = pytest.mark.integration
# Within the rollup's retention, whenever the tests run: older buckets are deleted as they are flushed.
T0 = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Both schemas in one database, as on PostgreSQL by default."""
    migrate(database_url)
    migrate(database_url, History.CHARTS)
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


def test_on_sqlite_a_chart_write_never_holds_up_an_alert(settings: Settings) -> None:
    """Chart data lives in a file of its own: an alert commits while a chart transaction is open."""
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    main, charts = make_engine(settings.sqlalchemy_url), make_engine(settings.charts_sqlalchemy_url, bulk=True)
    sessions = make_sessionmaker(main, charts=charts)
    try:
        with make_sessionmaker(charts).begin() as chart_write:
            chart_write.add(DeviceSeen(device_id="m-1", home_id="h-1", last_seen=T0, online=True))
            chart_write.flush()  # holds the chart database's write lock until the block ends
            with sessions.begin() as alert_path:
                alert_path.connection().exec_driver_sql("PRAGMA busy_timeout = 0")  # fail, don't wait
                alert_path.add(AuditEntry(action="opened", source="test"))
        with sessions() as session:
            seen = session.get(DeviceSeen, "m-1")
            audited = session.scalars(select(AuditEntry.action)).all()
    finally:
        main.dispose()
        charts.dispose()
    assert seen is not None and seen.last_seen == T0
    assert audited == ["opened"]


@pytest.mark.parametrize(
    ("main", "charts"),
    [
        ("sqlite:////srv/carebed/carebed.db", "sqlite:////srv/carebed/carebed-charts.db"),
        ("postgresql+psycopg://carebed:secret@db/carebed", "postgresql+psycopg://carebed:secret@db/carebed"),
    ],
)
def test_chart_data_goes_beside_sqlite_and_into_postgresql(main: str, charts: str) -> None:
    assert Settings(database_url=main).charts_sqlalchemy_url == charts
    assert Settings(database_url=main, charts_database_url="sqlite:////elsewhere.db").charts_sqlalchemy_url == (
        "sqlite:////elsewhere.db"
    )
