"""The database shared by the services: SQLite by default, PostgreSQL at scale.

The alerting service owns the schema (alerts, outbox, audit log) and the registry lives in
the same database as its one source of truth; the gateway only reads the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

from carebed.schemas import utc_now

__all__ = [
    "SQLITE_BULK_CHECKPOINT_PAGES",
    "SQLITE_URGENT_CHECKPOINT_PAGES",
    "Base",
    "UtcDateTime",
    "make_engine",
    "make_sessionmaker",
    "migrate",
    "utc_now",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# WAL pages (4 KiB each) past which a commit copies the WAL back (see make_engine): SQLite's
# default for the bulk writer.
SQLITE_BULK_CHECKPOINT_PAGES = 1000
SQLITE_URGENT_CHECKPOINT_PAGES = 10_000


class UtcDateTime(TypeDecorator[Any]):
    """Stores aware datetimes as UTC and gives them back aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(utc_now().tzinfo) if value is not None else None

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=utc_now().tzinfo)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


def make_engine(url: str, bulk: bool = False) -> Engine:
    """`bulk=True` is for data written in volume that a crash may lose a moment of (the activity charts).

    On PostgreSQL its commits return before the WAL reaches the disk, and leave the disk to the
    alert path's commits. On SQLite (whose WAL with synchronous=NORMAL never waits for the disk at
    commit) its connections copy the WAL back into the database: the commit that takes the WAL past
    `wal_autocheckpoint` pages does it, and the bulk writer, which writes nearly every page, is the
    one that should. Other connections do so only past a much larger WAL, should no bulk writer run.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        checkpoint_pages = SQLITE_BULK_CHECKPOINT_PAGES if bulk else SQLITE_URGENT_CHECKPOINT_PAGES

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA wal_autocheckpoint={checkpoint_pages}")
            cursor.close()

        return engine
    options = {"options": "-c synchronous_commit=off"} if bulk else {}
    return create_engine(url, pool_pre_ping=True, connect_args=options)


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")
