"""console: operator areas, away periods, activity rollup, device last seen

Revision ID: 0002_console
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import carebed.db

revision = "0002_console"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("areas", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "away_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("since", carebed.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("until", carebed.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("declared_by", sa.String(length=100), nullable=False),
        sa.Column("ended_at", carebed.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_away_periods")),
    )
    op.create_index(op.f("ix_away_periods_home_id"), "away_periods", ["home_id"])
    op.create_table(
        "activity_buckets",
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("start", carebed.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("water_l", sa.Float(), nullable=False),
        sa.Column("gas_m3", sa.Float(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("home_id", "start", name=op.f("pk_activity_buckets")),
    )
    op.create_index(op.f("ix_activity_buckets_start"), "activity_buckets", ["start"])
    op.create_table(
        "device_seen",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("last_seen", carebed.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_seen")),
    )
    op.create_index(op.f("ix_device_seen_home_id"), "device_seen", ["home_id"])


def downgrade() -> None:
    op.drop_table("device_seen")
    op.drop_table("activity_buckets")
    op.drop_table("away_periods")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("areas")
