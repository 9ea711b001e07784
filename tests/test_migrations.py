"""Each schema's migrations build what its models say, on SQLite and PostgreSQL, apart and side by side."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import alerting.models  # noqa: F401  (registers the alerting and chart tables)
from carebed import registry  # noqa: F401  (registers the registry tables)
from carebed.db import History, make_engine, migrate

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("history", list(History))
def test_the_migrations_build_the_models(database_url: str, history: History) -> None:
    migrate(database_url, history)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": history.version_table})
            differences = compare_metadata(context, history.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_both_histories_share_one_database(database_url: str) -> None:
    """On PostgreSQL both schemas live in one database by default: each keeps its own version."""
    migrate(database_url)
    migrate(database_url, History.CHARTS)
    migrate(database_url)  # again: nothing to do, the other history's table is no concern of it
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    for history in History:
        assert {history.version_table, *history.metadata.tables} <= tables
