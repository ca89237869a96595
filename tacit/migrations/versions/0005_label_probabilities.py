"""Per-level probabilities of a label, for labelers that have them (embedding, calibrated).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("probabilities", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                                        nullable=True))


def downgrade() -> None:
    op.drop_column("feedback", "probabilities")
