"""charts: activity buckets and last seen, in a schema of their own

Revision ID: 0001_charts
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from carebed.migrations.chart_tables import create_chart_tables

revision = "0001_charts"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_chart_tables()


def downgrade() -> None:
    op.drop_table("device_seen")
    op.drop_table("activity_buckets")
