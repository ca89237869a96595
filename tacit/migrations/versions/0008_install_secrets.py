"""Secrets of this installation, created with it: the key of the user-id pseudonyms.

Kept in the database, next to the data they protect, so that every worker of an installation (several
hosts, several pods) derives the same pseudonym for the same user without anyone distributing a secret.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "install_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.bulk_insert(table, [{"name": "user_id_pseudonyms", "value": secrets.token_bytes(32)}])


def downgrade() -> None:
    op.drop_table("install_secrets")
