"""Initial schema: conversations, messages, feedback, rejected events, training runs, model versions.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp(name: str, nullable: bool = False, default: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("conversation_id", sa.String(256), nullable=False),
        sa.Column("user_id", sa.String(256)),
        _timestamp("first_seen_at"),
        _timestamp("last_seen_at"),
        sa.Column("last_turn", sa.Integer, nullable=False),
        sa.UniqueConstraint("tenant", "conversation_id", name="uq_conversations_key"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("conversation_id", sa.String(256), nullable=False),
        sa.Column("turn_index", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("assistant_model", sa.String(256)),
        sa.Column("language", sa.String(32)),
        sa.Column("metadata", JSONB, nullable=False),
        _timestamp("created_at"),
        _timestamp("ingested_at", default=True),
        sa.UniqueConstraint("tenant", "conversation_id", "turn_index", name="uq_messages_key"),
    )
    op.create_index("ix_messages_user", "messages", ["tenant", "user_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("conversation_id", sa.String(256), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("query_turn", sa.Integer),
        sa.Column("response_turn", sa.Integer, nullable=False),
        sa.Column("followup_turn", sa.Integer, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("labeler_id", sa.String(64), nullable=False),
        sa.Column("labeler_version", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        _timestamp("created_at", default=True),
        _timestamp("updated_at", default=True),
        sa.CheckConstraint("level BETWEEN 1 AND 5", name="ck_feedback_level"),
        sa.UniqueConstraint(
            "tenant", "conversation_id", "response_turn", "labeler_id", "stage", name="uq_feedback_key"
        ),
    )
    op.create_index("ix_feedback_level", "feedback", ["level"])
    op.create_table(
        "rejected_events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("key", sa.LargeBinary),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _timestamp("created_at", default=True),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_rejected_events_source"),
    )
    op.create_table(
        "training_runs",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("num_examples", sa.Integer),
        sa.Column("ray_job_id", sa.String(128)),
        sa.Column("error", sa.Text),
        _timestamp("started_at", default=True),
        _timestamp("finished_at", nullable=True),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("training_run_id", sa.BigInteger, sa.ForeignKey("training_runs.id")),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metrics", JSONB, nullable=False),
        _timestamp("created_at", default=True),
    )


def downgrade() -> None:
    for table in ("model_versions", "training_runs", "rejected_events", "feedback", "messages", "conversations"):
        op.drop_table(table)
