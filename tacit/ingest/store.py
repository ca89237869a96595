"""What the worker and ``tacit relabel`` read back from PostgreSQL: for mining, stale turns and the idle sweep.

The sink only writes; a turn too old for the conversation window is paired from the stored messages around
it; mining needs the stored ``pending`` items of a batch's conversations and the
follow-ups stored after them, and the items of conversations that went quiet must be finalised. Both are
this store's: reads on the feedback key's index, and one UPDATE for the sweep.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.engine import Engine

from tacit.core.db import FeedbackRow, MessageRow
from tacit.core.domain import (
    PENDING,
    RAW,
    REFINED,
    ChatEvent,
    ConversationKey,
    Followup,
    Label,
    Message,
    Role,
    SatisfactionLevel,
    Stored,
)
from tacit.ingest.sink import FRESH_ID


@dataclass
class StoredConversation:
    """Stored messages of one conversation (in no particular order), and its user."""

    messages: list[Message] = field(default_factory=list)
    user_id: str | None = None


class PendingStore:
    """The pending items mining decides, read from and finalised in PostgreSQL."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def pending(self, conversations: Collection[ConversationKey]) -> tuple[list[Stored], list[Followup]]:
        """The pending items of ``conversations`` (not empty), and the stored follow-ups after them.

        Two queries on the feedback key's index; the second only when there are pending items.
        """
        in_conversations = tuple_(FeedbackRow.tenant, FeedbackRow.conversation_id).in_
        with self.engine.connect() as conn:
            rows = conn.execute(_with_followup_text(in_conversations(conversations), PENDING))
            stored = [_stored(row) for row in rows]
            if not stored:
                return [], []
            first: dict[ConversationKey, int] = {}
            for item in stored:
                key = item.followup.conversation
                first[key] = min(item.followup.turn, first.get(key, item.followup.turn))
            rows = conn.execute(_with_followup_text(in_conversations(first), RAW))
            known = [_stored(row).followup for row in rows]
        return stored, [f for f in known if f.turn > first[f.conversation]]

    def around(self, events: Sequence[ChatEvent], capacity: int) -> dict[ConversationKey, StoredConversation]:
        """The stored messages of each event's conversation from ``capacity`` turns before it to one after.

        One query on the messages' natural key; stale turns are rare (a crash, a replayed old log), so the
        bounds are simple OR-ed ranges.
        """
        bounds: dict[ConversationKey, tuple[int, int]] = {}
        for e in events:
            low, high = bounds.get((e.tenant, e.conversation_id), (e.turn_index, e.turn_index))
            bounds[(e.tenant, e.conversation_id)] = (min(low, e.turn_index), max(high, e.turn_index))
        ranges = [and_(MessageRow.tenant == tenant, MessageRow.conversation_id == conversation,
                       MessageRow.turn_index.between(low - capacity, high + 1))
                  for (tenant, conversation), (low, high) in bounds.items()]
        found: dict[ConversationKey, StoredConversation] = {key: StoredConversation() for key in bounds}
        with self.engine.connect() as conn:
            for row in conn.execute(select(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index,
                                           MessageRow.role, MessageRow.content, MessageRow.user_id)
                                    .where(or_(*ranges))):
                stored = found[(row.tenant, row.conversation_id)]
                stored.messages.append(Message(Role(row.role), row.content, row.turn_index))
                stored.user_id = stored.user_id or row.user_id
        return found

    def finalise_idle(self, idle_seconds: float) -> int:
        """Pending items of conversations quiet for ``idle_seconds`` become ``refined``, level unchanged.

        Idle is measured on ``ingested_at`` (when the worker stored a message), not on the messages' own
        timestamps, which replayed logs set far in the past.
        """
        recent = select(MessageRow.id).where(
            MessageRow.tenant == FeedbackRow.tenant,
            MessageRow.conversation_id == FeedbackRow.conversation_id,
            MessageRow.ingested_at > func.now() - timedelta(seconds=idle_seconds)).exists()
        with self.engine.begin() as conn:
            return conn.execute(update(FeedbackRow).where(FeedbackRow.stage == PENDING, ~recent)
                                .values(id=FRESH_ID, stage=REFINED, updated_at=func.now())).rowcount


def _with_followup_text(where, stage: str):
    """Feedback rows of ``stage`` matching ``where``, each with the text of its follow-up message."""
    followup = and_(MessageRow.tenant == FeedbackRow.tenant,
                    MessageRow.conversation_id == FeedbackRow.conversation_id,
                    MessageRow.turn_index == FeedbackRow.followup_turn)
    return (select(FeedbackRow.__table__, MessageRow.content).join(MessageRow, followup)
            .where(where, FeedbackRow.stage == stage))


def _stored(row) -> Stored:
    level = SatisfactionLevel(row.level)
    probabilities = tuple(row.probabilities) if row.probabilities is not None else None
    label = Label(level, row.confidence, row.reason, row.labeler_id, row.labeler_version, row.stage, probabilities)
    followup = Followup((row.tenant, row.conversation_id), row.labeler_id, row.followup_turn, row.content,
                        level, row.confidence)
    return Stored(row.response_turn, followup, label)


