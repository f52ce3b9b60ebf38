"""Observation counters wide enough for count events.

A sale event may carry a ``quantity`` (up to ``schemas.events.MAX_QUANTITY``) and counts as that
many events, so ``observations.n_events`` (the vehicles counted in a segment-month) becomes a
64-bit integer: a 32-bit one would overflow after a few hundred large counts, and PostgreSQL
would refuse the batch. (A ``market`` needs no column: it leads the segment key.)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.alter_column(
            "n_events", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.alter_column(
            "n_events", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
