"""The databases shared by the services: SQLite by default, PostgreSQL at scale.

The alerting service owns the schema (alerts, outbox, audit log) and the registry lives in
the same database as its one source of truth; the gateway only reads the registry. Chart data
(activity buckets, last seen) has a schema of its own, `ChartBase`, with its own migrations,
so that it can live in a database of its own (`Settings.charts_sqlalchemy_url`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

from carebed.schemas import utc_now

__all__ = [
    "Base",
    "ChartBase",
    "History",
    "UtcDateTime",
    "make_engine",
    "make_sessionmaker",
    "migrate",
    "require_current",
    "utc_now",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS = Path(__file__).with_name("migrations")


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


class ChartBase(DeclarativeBase):
    """Chart data: written in volume, a moment of it may be lost, and no alert waits for it."""

    metadata = MetaData(naming_convention=_NAMING)


class History(StrEnum):
    """A schema's line of migrations: the folder of its revisions, under carebed/migrations."""

    MAIN = "versions"
    CHARTS = "charts"

    @property
    def version_table(self) -> str:
        """Apart, so that both histories can share one PostgreSQL database."""
        return "alembic_version" if self is History.MAIN else f"alembic_version_{self.value}"

    @property
    def metadata(self) -> MetaData:
        return Base.metadata if self is History.MAIN else ChartBase.metadata


def make_engine(url: str, bulk: bool = False) -> Engine:
    """`bulk=True` is for data written in volume that a crash may lose a moment of (the activity charts).

    On PostgreSQL its commits return before the WAL reaches the disk, and leave the disk to the
    alert path's commits. SQLite's WAL with synchronous=NORMAL never waits for the disk at commit;
    there chart data is kept apart instead, in a file with a write lock of its own.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    options = {"options": "-c synchronous_commit=off"} if bulk else {}
    return create_engine(url, pool_pre_ping=True, connect_args=options)


def make_sessionmaker(engine: Engine, charts: Engine | None = None) -> sessionmaker[Any]:
    """Sessions on `engine`; with `charts`, the chart tables (ChartBase) are read and written there."""
    return sessionmaker(engine, binds={ChartBase: charts} if charts else None, expire_on_commit=False)


def _alembic_config(url: str, history: History) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")  # a folder may have a space in its name
    config.set_main_option("version_locations", str(MIGRATIONS / history.value))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["history"] = history
    return config


def migrate(url: str, history: History = History.MAIN) -> None:
    """Bring one schema to its newest revision (idempotent)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(_alembic_config(url, history), "head")


def upgrade(url: str, charts_url: str) -> None:
    """Both histories to their newest revision: what `carebed db upgrade` and `carebed up` do, and nothing else."""
    migrate(url)
    migrate(charts_url, History.CHARTS)


class SchemaBehind(Exception):
    """The database is missing or older than this release: only `carebed db upgrade` (or `carebed up`) migrates."""


def require_current(url: str, history: History = History.MAIN) -> None:
    """Raise SchemaBehind unless the schema is at its newest revision; creates nothing."""
    location = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and not Path(location).exists():
        raise SchemaBehind(f"no database at {location}")
    heads = set(ScriptDirectory.from_config(_alembic_config(url, history)).get_heads())
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": history.version_table})
            current = set(context.get_current_heads())
    finally:
        engine.dispose()
    if current != heads:
        have = ", ".join(sorted(current)) or "none"
        raise SchemaBehind(f"the database schema is at revision {have}, this release needs {', '.join(sorted(heads))}")


def require_upgraded(url: str, charts_url: str) -> None:
    """Raise SchemaBehind unless both histories are at their newest revision (a service never migrates)."""
    require_current(url)
    require_current(charts_url, History.CHARTS)
