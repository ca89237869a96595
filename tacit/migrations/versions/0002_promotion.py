"""Promotion and scheduling: one champion at most, decisions with reasons, run timings and watermark.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("training_runs", sa.Column("timings", JSONB, nullable=False, server_default="{}"))
    op.add_column("training_runs", sa.Column("feedback_watermark", sa.BigInteger))
    op.add_column("model_versions", sa.Column("promoted_at", sa.DateTime(timezone=True)))
    # Two concurrent promotions cannot both leave a champion: the second commit fails on this index.
    op.create_index(
        "uq_model_versions_one_champion",
        "model_versions",
        ["status"],
        unique=True,
        postgresql_where=sa.text("status = 'champion'"),
    )
    op.create_table(
        "model_decisions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("version_id", sa.BigInteger, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reasons", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_model_decisions_version", "model_decisions", ["version_id"])


def downgrade() -> None:
    op.drop_table("model_decisions")
    op.drop_index("uq_model_versions_one_champion", "model_versions")
    op.drop_column("model_versions", "promoted_at")
    op.drop_column("training_runs", "feedback_watermark")
    op.drop_column("training_runs", "timings")
