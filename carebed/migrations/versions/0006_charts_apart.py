"""charts apart: activity buckets and last seen leave the main schema for a history of their own

Their new home is the chart schema (carebed/migrations/charts), in the database that
Settings.charts_sqlalchemy_url names: a file of its own beside a SQLite database, the same
database on PostgreSQL. What the tables held is chart data, seven days at most, and is dropped:
after the upgrade the charts start afresh, and each device reads as offline until it next reports.

Revision ID: 0006_charts_apart
Revises: 0005_escalation
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from carebed.migrations.chart_tables import create_chart_tables

revision = "0006_charts_apart"
down_revision = "0005_escalation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("device_seen")
    op.drop_table("activity_buckets")


def downgrade() -> None:
    create_chart_tables()
