"""Running scores per stream partition, mergeable: ``score_history.partition``, ``n``, ``stats``.

The stream writes one running score per model, metric and partition over a sliding window of
event time; ``partition`` says whose it is, ``n`` how many points are behind it and ``stats``
the sufficient statistics (``RunningMetrics.stats`` of the model and of its baseline), so the
readers merge the partitions' latest scores exactly. Older rows keep NULLs (read as one
partition of unknown weight). An index serves the reader's "latest rows of this model" query.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("score_history") as batch:
        batch.add_column(sa.Column("partition", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("n", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stats", sa.JSON(), nullable=True))
    op.create_index(
        "ix_score_model",
        "score_history",
        ["domain", "scope", "model_id", "metric", "recorded_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_score_model", table_name="score_history")
    with op.batch_alter_table("score_history") as batch:
        batch.drop_column("stats")
        batch.drop_column("n")
        batch.drop_column("partition")
