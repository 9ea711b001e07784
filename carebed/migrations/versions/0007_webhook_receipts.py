"""webhook receipts and repeated presses: Twilio callbacks acted on, and presses that repeat a finding id

A Twilio signature never expires, so the callbacks acted on are kept by key and a replay does
nothing. A device with a stuck clock repeats its alarm's id; a later press is recorded under the
id and its alert, with the finding's id in ``findings.finding_id``.

Revision ID: 0007_webhook_receipts
Revises: 0006_charts_apart
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import carebed.db

revision = "0007_webhook_receipts"
down_revision = "0006_charts_apart"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_receipts",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("received_at", carebed.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_webhook_receipts")),
    )
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("finding_id", sa.String(length=200), nullable=True))
        batch.create_index(batch.f("ix_findings_finding_id"), ["finding_id"])


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_index(batch.f("ix_findings_finding_id"))
        batch.drop_column("finding_id")
    op.drop_table("webhook_receipts")
