"""Processed event ids, so a re-published duplicate is refused instead of counted twice.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("domain", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("domain", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("processed_events")
