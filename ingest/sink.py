"""The Postgres sink: one transaction per batch, idempotent upserts on natural keys.

A batch is written whole or not at all. The agent acknowledges a batch's Kafka records only after
:meth:`PostgresSink.write` returned, so offsets are committed only for what is in the database; a record
delivered again after a crash hits the same unique keys and changes nothing (or rewrites the same label).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from tacit.db import Conversation, FeedbackRow, MessageRow, RejectedEvent
from tacit.domain import ChatEvent, FeedbackCandidate, Label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes
    reason: str


@dataclass(frozen=True)
class SinkBatch:
    events: Sequence[ChatEvent]
    labeled: Sequence[tuple[FeedbackCandidate, Label]]
    dead_letters: Sequence[DeadLetter]


class PostgresSink:
    def __init__(self, engine: Engine):
        self.engine = engine

    def write(self, batch: SinkBatch) -> None:
        with self.engine.begin() as conn:
            # Statements built once and given their rows as parameter lists: SQLAlchemy caches their
            # compilation and sends the rows in multi-row batches ("insertmanyvalues"); a statement with
            # the rows inlined by .values() would be compiled afresh for every batch, most of a worker's time.
            if batch.events:
                conn.execute(MESSAGES_UPSERT, _message_rows(batch.events))
                conn.execute(CONVERSATIONS_UPSERT, _conversation_rows(batch.events))
            if batch.labeled:
                conn.execute(FEEDBACK_UPSERT, _feedback_rows(batch.labeled))
            if batch.dead_letters:
                conn.execute(REJECTED_INSERT, _rejected_rows(batch.dead_letters))


MESSAGES_UPSERT = insert(MessageRow).on_conflict_do_nothing(constraint="uq_messages_key")


def _message_rows(events: Sequence[ChatEvent]) -> list[dict]:
    return [
        {
            "event_id": e.event_id, "tenant": e.tenant, "conversation_id": e.conversation_id,
            "turn_index": e.turn_index, "role": e.role.value, "content": e.content, "user_id": e.user_id,
            "assistant_model": e.assistant_model, "language": e.language, "metadata": e.metadata,
            "created_at": e.timestamp,
        }
        for e in events
    ]


def _conversations_upsert():
    new = insert(Conversation).excluded
    return insert(Conversation).on_conflict_do_update(
        constraint="uq_conversations_key",
        set_={
            "user_id": func.coalesce(Conversation.user_id, new.user_id),
            "first_seen_at": func.least(Conversation.first_seen_at, new.first_seen_at),
            "last_seen_at": func.greatest(Conversation.last_seen_at, new.last_seen_at),
            "last_turn": func.greatest(Conversation.last_turn, new.last_turn),
        },
    )


CONVERSATIONS_UPSERT = _conversations_upsert()


def _conversation_rows(events: Sequence[ChatEvent]) -> list[dict]:
    """One row per conversation (an upsert may not touch a row twice); keeps the earliest first and latest
    last sighting."""
    merged: dict[tuple[str, str], dict] = {}
    for e in events:
        row = merged.setdefault((e.tenant, e.conversation_id), {
            "tenant": e.tenant, "conversation_id": e.conversation_id, "user_id": e.user_id,
            "first_seen_at": e.timestamp, "last_seen_at": e.timestamp, "last_turn": e.turn_index,
        })
        row["first_seen_at"] = min(row["first_seen_at"], e.timestamp)
        row["last_seen_at"] = max(row["last_seen_at"], e.timestamp)
        row["last_turn"] = max(row["last_turn"], e.turn_index)
        row["user_id"] = row["user_id"] or e.user_id
    return list(merged.values())


def _feedback_upsert():
    new = insert(FeedbackRow).excluded
    return insert(FeedbackRow).on_conflict_do_update(
        constraint="uq_feedback_key",
        set_={
            "level": new.level, "confidence": new.confidence, "reason": new.reason,
            "labeler_version": new.labeler_version, "followup_turn": new.followup_turn,
            "updated_at": func.now(),
        },
    )


FEEDBACK_UPSERT = _feedback_upsert()


def _feedback_rows(labeled: Sequence[tuple[FeedbackCandidate, Label]]) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for candidate, label in labeled:
        key = (candidate.tenant, candidate.conversation_id, candidate.response.turn_index,
               label.labeler_id, label.stage)
        rows[key] = {
            "tenant": candidate.tenant, "conversation_id": candidate.conversation_id,
            "user_id": candidate.user_id,
            "query_turn": candidate.query.turn_index if candidate.query else None,
            "response_turn": candidate.response.turn_index,
            "followup_turn": candidate.followup.turn_index,
            "level": int(label.level), "confidence": label.confidence, "reason": label.reason,
            "labeler_id": label.labeler_id, "labeler_version": label.labeler_version, "stage": label.stage,
        }
    return list(rows.values())


REJECTED_INSERT = insert(RejectedEvent).on_conflict_do_nothing(constraint="uq_rejected_events_source")


def _rejected_rows(dead_letters: Sequence[DeadLetter]) -> list[dict]:
    return [
        {"topic": d.topic, "partition": d.partition, "offset": d.offset, "key": d.key,
         "payload": d.payload, "reason": d.reason}
        for d in dead_letters
    ]


def backoff_delays(first: float = 0.5, cap: float = 30.0):
    """0.5, 1, 2, ... capped: how long the worker waits between attempts while Postgres is down."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)

