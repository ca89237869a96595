"""Indexes of the dashboard's panels: each aggregate reads a covering, partial index instead of the tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DERIVED = sa.text("stage IN ('refined', 'filtered')")


def upgrade() -> None:
    # satisfaction over time and alerts: a tenant's replies in a time range, then each one's derived label
    op.create_index("ix_messages_replies_time", "messages", ["tenant", "created_at"],
                    postgresql_include=["conversation_id", "turn_index", "assistant_model"],
                    postgresql_where=sa.text("role = 'assistant'"))
    op.create_index("ix_feedback_derived_reply", "feedback", ["tenant", "conversation_id", "response_turn"],
                    postgresql_include=["level"], postgresql_where=DERIVED)
    # label mix per labeler version, by the time of labeling
    op.create_index("ix_feedback_derived_time", "feedback", ["tenant", "created_at"],
                    postgresql_include=["labeler_id", "labeler_version", "level"], postgresql_where=DERIVED)
    # filtered and mined labels by reason
    op.create_index("ix_feedback_refinement_time", "feedback", ["tenant", "created_at"],
                    postgresql_include=["stage", "reason"],
                    postgresql_where=sa.text("stage = 'filtered' OR reason LIKE 'mined:%'"))
    # the newest dissatisfied follow-ups, paged by id
    op.create_index("ix_feedback_dissatisfied", "feedback", ["tenant", sa.text("id DESC")],
                    postgresql_where=sa.text("level <= 2 AND stage IN ('refined', 'filtered')"))
    # live operations: a tenant's messages stored lately, and dead letters of the last day
    op.create_index("ix_messages_ingested", "messages", ["tenant", "ingested_at"])
    op.create_index("ix_rejected_events_created", "rejected_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_rejected_events_created", table_name="rejected_events")
    op.drop_index("ix_messages_ingested", table_name="messages")
    op.drop_index("ix_feedback_dissatisfied", table_name="feedback")
    op.drop_index("ix_feedback_refinement_time", table_name="feedback")
    op.drop_index("ix_feedback_derived_time", table_name="feedback")
    op.drop_index("ix_feedback_derived_reply", table_name="feedback")
    op.drop_index("ix_messages_replies_time", table_name="messages")
