"""The prediction log: every prediction the API served, with its inputs and output.

``prediction_log`` holds one row per prediction (domain, model version, the request's inputs
and the answer as JSON text, latency in milliseconds, when it was served). The API writes it
in batches off the request path; ``GET /v1/ml/predictions`` reads it back and
``GET /v1/ml/monitoring`` computes its latency figures from it, so both survive a restart.
Retention (rows and days) is applied by the API after each flush.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("domain", sa.String(length=40), nullable=False),
        sa.Column("endpoint", sa.String(length=60), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_prediction_log_served_at", "prediction_log", ["served_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_served_at", table_name="prediction_log")
    op.drop_table("prediction_log")
