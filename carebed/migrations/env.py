"""Alembic environment: runs one history's migrations on the URL given by carebed.db.migrate."""

from __future__ import annotations

from alembic import context

import alerting.models  # noqa: F401  (registers the alerting and chart tables)
from carebed import registry  # noqa: F401  (registers the registry tables)
from carebed.db import History, make_engine


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url
    history = context.config.attributes.get("history", History.MAIN)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=history.metadata,
                version_table=history.version_table,
                render_as_batch=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run()
