"""`carebed backup` and `carebed restore`, run as a user runs them, on SQLite and on PostgreSQL.

A centre is filled (registry, users, alerts with their notifications, chart data, broker accounts,
a detector checkpoint), backed up while its database is open, and restored into an empty data
folder and empty databases, where every alert, user and device is found again.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from alerting.auth import Role, authenticate, create_user
from alerting.models import Alert, DeviceSeen, Notification, User
from alerting.store import ingest_finding
from carebed.db import make_engine, make_sessionmaker, upgrade
from carebed.provisioning import sync_broker_auth
from carebed.registry import Device, Home, import_registry
from carebed.schemas import Finding, FindingCode, Severity, utc_now
from carebed.settings import Settings
from carebed_app.postgres import create_database
from simulators.homes import build_registry

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class Centre:
    env: dict[str, str]
    settings: Settings


def centre(data_dir: Path, database_url: str) -> Centre:
    """Where a centre keeps its data, as the environment tells carebed (database empty or not)."""
    env = {"CAREBED_DATA_DIR": str(data_dir)}
    if database_url.startswith("postgresql"):
        env["CAREBED_DATABASE_URL"] = database_url
    return Centre(env, Settings(data_dir=data_dir, database_url=env.get("CAREBED_DATABASE_URL", "")))


def carebed(where: Centre, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAREBED_")}
    return subprocess.run(
        [sys.executable, "-m", "carebed", *args],
        env={**clean, **where.env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def source(tmp_path: Path, database_url: str) -> Centre:
    """A centre with homes, devices, users, alerts, chart data, broker accounts and a detector checkpoint."""
    where = centre(tmp_path / "data", database_url)
    settings = where.settings
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    engine, charts = make_engine(settings.sqlalchemy_url), make_engine(settings.charts_sqlalchemy_url)
    registry = build_registry(homes=3, seed=11)
    with make_sessionmaker(engine, charts=charts).begin() as session:
        import_registry(session, registry)
        create_user(session, "alice", PASSWORD, Role.SUPERVISOR)
        create_user(session, "bob", PASSWORD, Role.OPERATOR, [registry.homes[0].street])
        for n, home in enumerate(registry.homes):
            for code in (FindingCode.SOS, FindingCode.WATER_LEAK):
                finding = Finding(
                    id=f"{home.id}-{code}-{n}", home_id=home.id, code=code, severity=Severity.CRITICAL,
                    ts=utc_now() - timedelta(hours=n), detected_at=utc_now(), summary=f"{code} at {home.id}",
                )  # fmt: skip
                assert ingest_finding(session, finding, TZ).created
        device = registry.homes[0].devices[0]
        session.add(DeviceSeen(device_id=device.id, home_id=registry.homes[0].id, last_seen=utc_now(), online=True))
        sync_broker_auth(session, settings.data_dir / "mosquitto", {"carebed-gateway": "gateway-password"})
    engine.dispose()
    charts.dispose()
    (settings.data_dir / "detector").mkdir(parents=True)
    (settings.data_dir / "detector" / "state.pickle").write_bytes(secrets.token_bytes(4096))
    # What a backup leaves out: the broker's pid and queue, logs, a half-written checkpoint.
    (settings.data_dir / "mosquitto" / "mosquitto.pid").write_text("12345\n")
    (settings.data_dir / "mosquitto" / "mosquitto.db").write_bytes(b"queued")
    (settings.data_dir / "logs").mkdir()
    (settings.data_dir / "logs" / "alerting.log").write_text("{}\n")
    (settings.data_dir / "detector" / "state.pickle.99.tmp").write_bytes(b"partial")
    return where


@pytest.fixture
def empty(tmp_path: Path, database_url: str) -> Centre:
    """A new data folder that does not exist yet, and for PostgreSQL a new empty database."""
    if database_url.startswith("postgresql"):
        database_url = create_database(database_url.rsplit("/", 1)[0] + "/", f"r_{secrets.token_hex(6)}")
    return centre(tmp_path / "restored" / "data", database_url)


def rows(settings: Settings) -> dict[str, object]:
    engine, charts = make_engine(settings.sqlalchemy_url), make_engine(settings.charts_sqlalchemy_url)
    try:
        with make_sessionmaker(engine, charts=charts)() as session:
            return {
                "alerts": session.execute(
                    select(Alert.id, Alert.home_id, Alert.code, Alert.status, Alert.first_ts).order_by(Alert.id)
                ).all(),
                "notifications": session.execute(
                    select(Notification.id, Notification.recipient, Notification.status).order_by(Notification.id)
                ).all(),
                "users": session.execute(select(User.username, User.password_hash, User.role).order_by(User.id)).all(),
                "homes": session.scalars(select(Home.id).order_by(Home.id)).all(),
                "devices": session.execute(select(Device.id, Device.credential_hash).order_by(Device.id)).all(),
                "seen": session.scalars(select(DeviceSeen.device_id)).all(),
                "login": authenticate(session, "bob", PASSWORD) is not None,
            }
    finally:
        engine.dispose()
        charts.dispose()


def test_a_backup_restores_into_an_empty_data_folder(source: Centre, empty: Centre, tmp_path: Path) -> None:
    before = rows(source.settings)
    assert len(before["alerts"]) == 6 and len(before["users"]) == 2 and before["devices"] and before["seen"]  # type: ignore[arg-type]
    archive = tmp_path / "backups" / "carebed.tar.gz"
    made = carebed(source, "backup", str(archive))
    assert made.returncode == 0, made.stderr
    assert "3 homes" in made.stdout and "6 alerts" in made.stdout and "2 users" in made.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    restored = carebed(empty, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "carebed db upgrade" in restored.stdout
    after = rows(empty.settings)
    assert after == before and after["login"]
    data, new = source.settings.data_dir, empty.settings.data_dir
    for kept in ("mosquitto/passwd", "mosquitto/acl", "mosquitto/services.passwd", "detector/state.pickle"):
        assert (new / kept).read_bytes() == (data / kept).read_bytes(), kept
        assert stat.S_IMODE((new / kept).stat().st_mode) == 0o600, kept
    assert stat.S_IMODE(new.stat().st_mode) == 0o700
    for left_out in ("mosquitto/mosquitto.pid", "mosquitto/mosquitto.db", "logs", "detector/state.pickle.99.tmp"):
        assert not (new / left_out).exists(), left_out


def test_restore_never_overwrites(source: Centre, tmp_path: Path) -> None:
    archive = tmp_path / "carebed.tar.gz"
    assert carebed(source, "backup", str(archive)).returncode == 0
    before = rows(source.settings)
    again = carebed(source, "restore", str(archive))
    assert again.returncode != 0
    assert "empty" in again.stderr and "Traceback" not in again.stderr
    assert rows(source.settings) == before
    second = carebed(source, "backup", str(archive))
    assert second.returncode != 0 and "exists" in second.stderr
    inside = carebed(source, "backup", str(source.settings.data_dir / "backup.tar.gz"))
    assert inside.returncode != 0 and "outside the data folder" in inside.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_hostile_archive_is_refused_whole(source: Centre, empty: Centre, tmp_path: Path) -> None:
    """A member that would land outside the data folder, or a link: refused, and nothing at all is written."""
    archive = tmp_path / "carebed.tar.gz"
    assert carebed(source, "backup", str(archive)).returncode == 0
    for n, hostile in enumerate(["../escaped", "/tmp/absolute", "data/../../escaped", "data/link"]):
        tampered = tmp_path / f"tampered-{n}.tar.gz"
        with tarfile.open(archive) as original, tarfile.open(tampered, "w:gz") as out:
            for member in original.getmembers():
                out.addfile(member, original.extractfile(member))
            info = tarfile.TarInfo(hostile)
            if hostile.endswith("link"):
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                out.addfile(info)
            else:
                info.size = 4
                out.addfile(info, io.BytesIO(b"evil"))
        result = carebed(empty, "restore", str(tampered))
        assert result.returncode != 0 and "refusing" in result.stderr, hostile
        assert not empty.settings.data_dir.exists(), hostile
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/absolute").exists()
