"""device broker credentials and the path a device speaks through

Revision ID: 0004_device_credentials
Revises: 0002_console
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_device_credentials"
down_revision = "0002_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("credential_hash", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        batch_op.drop_column("credential_hash")
        batch_op.drop_column("via")
