"""escalation: plans and states per alert, policies per home, quiet hours, response times, notification steps

Revision ID: 0005_escalation
Revises: 0004_device_credentials
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import carebed.db

revision = "0005_escalation"
down_revision = "0004_device_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("first_notified_at", carebed.db.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("arrived_at", carebed.db.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("arrived_by", sa.String(length=100), nullable=True))
    with op.batch_alter_table("responders") as batch:
        batch.add_column(sa.Column("quiet_hours", sa.String(length=11), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("round", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("step", sa.Integer(), nullable=True))
    op.create_table(
        "escalations",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(length=15), nullable=False),
        sa.Column("next_at", carebed.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", carebed.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_escalations_alert_id_alerts")),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_escalations")),
    )
    op.create_index(op.f("ix_escalations_next_at"), "escalations", ["next_at"])
    op.create_table(
        "escalation_policies",
        sa.Column("home_id", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", carebed.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["home_id"], ["homes.id"], name=op.f("fk_escalation_policies_home_id_homes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("home_id", "severity", name=op.f("pk_escalation_policies")),
    )


def downgrade() -> None:
    op.drop_table("escalation_policies")
    op.drop_index(op.f("ix_escalations_next_at"), table_name="escalations")
    op.drop_table("escalations")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("step")
        batch.drop_column("round")
    with op.batch_alter_table("responders") as batch:
        batch.drop_column("quiet_hours")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("arrived_by")
        batch.drop_column("arrived_at")
        batch.drop_column("first_notified_at")
