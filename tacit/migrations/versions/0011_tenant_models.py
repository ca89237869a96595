"""Tenant-scoped models: a version belongs to one tenant or (NULL) to everyone; one champion per scope.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CHAMPION = sa.text("status = 'champion'")


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("tenant", sa.String(128)))
    op.drop_index("uq_model_versions_one_champion", "model_versions")
    # Two concurrent promotions in one scope cannot both leave a champion: the second commit fails here.
    op.create_index("uq_model_versions_one_champion", "model_versions", [sa.text("coalesce(tenant, '')")],
                    unique=True, postgresql_where=CHAMPION)


def downgrade() -> None:
    """Back to one champion for all: the tenants' versions (and their decisions) are deleted."""
    op.execute("DELETE FROM model_decisions WHERE version_id IN "
               "(SELECT id FROM model_versions WHERE tenant IS NOT NULL)")
    op.execute("DELETE FROM model_versions WHERE tenant IS NOT NULL")
    op.drop_index("uq_model_versions_one_champion", "model_versions")
    op.create_index("uq_model_versions_one_champion", "model_versions", ["status"], unique=True,
                    postgresql_where=CHAMPION)
    op.drop_column("model_versions", "tenant")
