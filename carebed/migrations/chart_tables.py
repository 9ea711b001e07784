"""The chart tables as they were when they left the main schema (2026-12-02), for the two revisions that create them.

A frozen copy, as a revision is: a later change to the chart tables is a new revision of the
charts history, not an edit here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import carebed.db


def create_chart_tables() -> None:
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
