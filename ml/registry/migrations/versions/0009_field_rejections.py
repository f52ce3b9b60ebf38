"""Field rejections: values dropped from accepted stream events.

``field_rejections`` counts the invalid values the stream dropped from events it otherwise
kept (e.g. a negative uplink rate of a network measurement, whose RSRP is kept), per topic,
partition, field and reason, with the latest example; written in the transaction of each batch,
one row per partition (only the partition's owner writes it).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "field_rejections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=60), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("example_value", sa.String(length=64), nullable=False),
        sa.Column("example_detail", sa.Text(), nullable=False),
        sa.Column("example_event_id", sa.String(length=128), nullable=False),
        sa.Column("example_key", sa.String(length=255), nullable=True),
        sa.Column("example_offset", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("topic", "partition", "field", "reason", name="uq_field_rejections"),
    )


def downgrade() -> None:
    op.drop_table("field_rejections")
