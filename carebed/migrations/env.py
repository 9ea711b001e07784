"""Alembic environment: runs the migrations on the URL given by carebed.db.migrate."""

from __future__ import annotations

from alembic import context

import alerting.models  # noqa: F401  (registers the alerting tables)
from carebed import registry  # noqa: F401  (registers the registry tables)
from carebed.db import Base, make_engine

target_metadata = Base.metadata


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run()
