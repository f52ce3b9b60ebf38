"""Versioned processor states and readable stream statistics.

``stream_checkpoints.state_version`` is the format version of the pickled processor state (a
worker refuses, loudly, a state of a version it does not know instead of unpickling it); the
states stored before this revision are version 1. ``stream_statistics`` holds each partition
processor's current statistics (drift statistics, running scores) as plain JSON rows, written
in the batch's transaction, so readers need no stream class.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_checkpoints") as batch:
        batch.add_column(sa.Column("state_version", sa.Integer(), nullable=True))
    op.execute("UPDATE stream_checkpoints SET state_version = 1 WHERE state IS NOT NULL")
    op.create_table(
        "stream_statistics",
        sa.Column("consumer", sa.String(length=120), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("domain", sa.String(length=40), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", "scope", "name"),
    )
    op.create_index("ix_stream_statistics_domain", "stream_statistics", ["domain", "scope"])


def downgrade() -> None:
    op.drop_index("ix_stream_statistics_domain", table_name="stream_statistics")
    op.drop_table("stream_statistics")
    with op.batch_alter_table("stream_checkpoints") as batch:
        batch.drop_column("state_version")
