"""Dead letters in the store, and the outcome and reason of every training job.

``dead_letters`` holds each message the stream refused (topic, partition, offset, error type,
reason, a bounded excerpt of the payload), written in the transaction of the batch that refused
it and unique by ``event_id`` (derived from topic/partition/offset), so a redelivered batch adds
nothing. ``training_jobs.outcome`` (``promoted`` / ``rejected``) and ``training_jobs.reason``
(the gate's decision with every candidate's score) say what a job did.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("consumer", sa.String(length=120), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("error_type", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_bytes", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_dead_letters_error_type", "dead_letters", ["error_type"])
    op.create_index("ix_dead_letters_topic", "dead_letters", ["topic"])
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("reason")
        batch.drop_column("outcome")
    op.drop_index("ix_dead_letters_topic", table_name="dead_letters")
    op.drop_index("ix_dead_letters_error_type", table_name="dead_letters")
    op.drop_table("dead_letters")
