"""The Postgres sink: one transaction per batch, idempotent upserts on natural keys. It only writes.

A batch is written whole or not at all. The agent acknowledges a batch's Kafka records only after
:meth:`PostgresSink.write` returned, so offsets are committed only for what is in the database; a record
delivered again after a crash hits the same unique keys and changes nothing (or rewrites the same label).
Each item has exactly one derived row (``refined``, ``filtered`` or ``pending``): writing one deletes the
item's rows of the other derived stages in the same transaction, so no redelivery or relabel can leave two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from tacit.core.db import Conversation, FeedbackRow, MessageRow, RejectedEvent, SignalRow
from tacit.core.domain import (
    PENDING,
    RAW,
    ChatEvent,
    FeedbackCandidate,
    Label,
    SignalEvent,
    Stored,
)

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
    finalised: Sequence[tuple[Stored, Label]] = ()  # stored pending items that mining decided
    signals: Sequence[SignalEvent] = ()  # feedback signals, whether or not their message is stored yet


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
                rows = _feedback_rows(batch.labeled)
                if derived := _other_derived_rows(rows):
                    conn.execute(OTHER_DERIVED_DELETE, derived)
                conn.execute(FEEDBACK_UPSERT, rows)
            if batch.finalised:
                conn.execute(PENDING_FINALISE, _finalised_rows(batch.finalised))
            if batch.signals:
                conn.execute(SIGNALS_INSERT, _signal_rows(batch.signals))
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
            "probabilities": new.probabilities, "updated_at": func.now(),
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
            "probabilities": list(label.probabilities) if label.probabilities is not None else None,
        }
    return list(rows.values())


KEY_COLUMNS = ("tenant", "conversation_id", "response_turn", "labeler_id")


def _same_item(stage):
    """Rows of the item (tenant, conversation, reply, labeler) bound as ``key_<column>``, of ``stage``.

    Prefixed names: an UPDATE may not bind a column's own name in its WHERE clause.
    """
    same = (FeedbackRow.__table__.c[column] == bindparam(f"key_{column}") for column in KEY_COLUMNS)
    return and_(*same, stage)


def _item_key(tenant: str, conversation_id: str, response_turn: int, labeler_id: str) -> dict:
    return {"key_tenant": tenant, "key_conversation_id": conversation_id, "key_response_turn": response_turn,
            "key_labeler_id": labeler_id}


OTHER_DERIVED_DELETE = delete(FeedbackRow).where(_same_item(
    (FeedbackRow.stage != RAW) & (FeedbackRow.stage != bindparam("stage"))))

# A finalised row takes a fresh id: `tacit schedule` counts refined rows above the last run's id watermark
# as new labels, and a finalised item is one (nothing references feedback ids).
FRESH_ID = func.nextval(func.pg_get_serial_sequence(FeedbackRow.__tablename__, "id"))

PENDING_FINALISE = update(FeedbackRow).where(_same_item(FeedbackRow.stage == PENDING)).values(
    id=FRESH_ID, stage=bindparam("new_stage"), level=bindparam("new_level"),
    confidence=bindparam("new_confidence"), reason=bindparam("new_reason"), updated_at=func.now())


def _other_derived_rows(rows: Sequence[dict]) -> list[dict]:
    """Parameters of :data:`OTHER_DERIVED_DELETE` for the derived ones among feedback ``rows``."""
    return [{**_item_key(*(row[column] for column in KEY_COLUMNS)), "stage": row["stage"]}
            for row in rows if row["stage"] != RAW]


def _finalised_rows(finalised: Sequence[tuple[Stored, Label]]) -> list[dict]:
    return [
        {**_item_key(*item.followup.conversation, item.response_turn, label.labeler_id),
         "new_stage": label.stage, "new_level": int(label.level), "new_confidence": label.confidence,
         "new_reason": label.reason}
        for item, label in finalised
    ]


SIGNALS_INSERT = insert(SignalRow).on_conflict_do_nothing(constraint="uq_signals_key")


def _signal_rows(signals: Sequence[SignalEvent]) -> list[dict]:
    return [
        {"tenant": s.tenant, "conversation_id": s.conversation_id, "message_turn": s.message_turn,
         "event_id": s.event_id, "kind": s.signal, "detail": s.detail, "created_at": s.timestamp}
        for s in signals
    ]


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

