"""Alembic environment: runs one history's migrations on the URL given by carebed.db.migrate.

The revisions are explicit `op.*` scripts, so upgrading needs no models. `target_metadata` is the history's
metadata with whatever tables the caller has imported: only autogenerate and `compare_metadata` read it, and
tests/test_migrations.py imports alerting.models and carebed.registry before it compares. The kernel imports
no service, so this file does not import alerting.models itself.
"""

from __future__ import annotations

from alembic import context

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
