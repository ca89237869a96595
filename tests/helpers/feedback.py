"""Stored messages and ratings for the training tests: rows built by hand, in the shape the worker writes."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import FeedbackRow, MessageRow
from tacit.core.domain import Role

CONVERSATIONS = 30
LEVELS = (1, 2, 4, 5, 3)  # a neutral fifth, which the wildfb scheme drops


def message(conversation: str, turn: int, role: Role, content: str, user: str, *,
            tenant: str = "acme") -> MessageRow:
    return MessageRow(
        event_id=f"{conversation}-{turn}", tenant=tenant, conversation_id=conversation, turn_index=turn,
        role=role.value, content=content, user_id=user, metadata_={}, created_at=func.now(),
    )


def rating(conversation: str, user: str, response_turn: int, level: int, *, query_turn: int | None = -1,
           labeler: str = "rules", stage: str = "refined", tenant: str = "acme") -> FeedbackRow:
    return FeedbackRow(
        tenant=tenant, conversation_id=conversation, user_id=user,
        query_turn=response_turn - 1 if query_turn == -1 else query_turn, response_turn=response_turn,
        followup_turn=response_turn + 1, level=level, confidence=0.9, reason="", labeler_id=labeler,
        labeler_version="1", stage=stage,
    )


def insert_feedback(engine: Engine) -> None:
    """30 five-turn conversations rated twice each, one rated reply that opened its chat, and ratings by a
    second labeler and at another stage (training reads the refined stage by default)."""
    rows: list = []
    for i in range(CONVERSATIONS):
        conversation, user = f"conv-{i}", f"user-{i % 12}"
        rows += [
            message(conversation, 0, Role.USER, f"How do I sort list number {i} in Python?", user),
            message(conversation, 1, Role.ASSISTANT, "Use sorted(items), or items.sort() in place.", user),
            message(conversation, 2, Role.USER, "And in reverse order?", user),
            message(conversation, 3, Role.ASSISTANT, "Pass reverse=True to either of them.", user),
            message(conversation, 4, Role.USER, "Thanks, that fixed it!", user),
            rating(conversation, user, 1, LEVELS[2 * i % 5]),
            rating(conversation, user, 3, LEVELS[(2 * i + 1) % 5]),
        ]
    rows += [
        message("opener", 0, Role.ASSISTANT, "Hi! I can help with Python questions.", "user-99"),
        message("opener", 1, Role.USER, "Great, I love that.", "user-99"),
        rating("opener", "user-99", 0, 4, query_turn=None),
        rating("conv-0", "user-0", 1, 5, labeler="llm"),
        rating("conv-0", "user-0", 1, 4, stage="raw"),
    ]
    with Session(engine) as session, session.begin():
        session.add_all(rows)
