"""Stream positions that can be verified against the broker, and refused partitions.

``stream_checkpoints.fingerprint`` identifies the record at the stored offset (its timestamp and
checksums), so a worker can tell, at assignment, that the broker still holds the data the stored
state includes. ``stream_faults`` lists partitions a worker refused because it does not.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_checkpoints") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
    op.create_table(
        "stream_faults",
        sa.Column("consumer", sa.String(length=120), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stored_offset", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition"),
    )


def downgrade() -> None:
    op.drop_table("stream_faults")
    with op.batch_alter_table("stream_checkpoints") as batch:
        batch.drop_column("fingerprint")
