"""RLHI: preference pairs with the provenance of the labels they came from, and user personas.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _updated_at() -> sa.Column:
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "preference_pairs",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("conversation_id", sa.String(256), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("rejected_turn", sa.Integer, nullable=False),
        sa.Column("feedback_turn", sa.Integer, nullable=False),
        sa.Column("chosen_turn", sa.Integer, nullable=False),
        sa.Column("prompt", JSONB, nullable=False),
        sa.Column("chosen", sa.Text, nullable=False),
        sa.Column("rejected", sa.Text, nullable=False),
        sa.Column("provenance", JSONB, nullable=False),
        _updated_at(),
        sa.UniqueConstraint("tenant", "conversation_id", "source", "rejected_turn", "chosen_turn",
                            name="uq_preference_pairs_key"),
    )
    op.create_table(
        "personas",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("profile", JSONB, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("num_messages", sa.Integer, nullable=False),
        _updated_at(),
        sa.UniqueConstraint("tenant", "user_id", name="uq_personas_key"),
    )


def downgrade() -> None:
    op.drop_table("personas")
    op.drop_table("preference_pairs")
