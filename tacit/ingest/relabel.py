"""`tacit relabel`: derive every label again from the stored messages, after a labeler or filter changed.

The messages in PostgreSQL are the source of truth; labels are derived data. Conversations are read in
chunks, their follow-up candidates rebuilt exactly as the worker builds them (same window), labeled and
refined, mined, and upserted on the feedback table's natural key, so a second run rewrites the same rows.
An item that moved between derived stages loses its row of the other stage (the sink does that), so it
never has two. Mining sees each conversation as stored: a neutral item with fewer than two later follow-ups
stays ``pending``, as in the worker, and the idle sweep the worker runs finalises those of quiet
conversations at the end (every tenant's, like the worker's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection, Engine, Row

from tacit.core.conversations import ConversationWindow, observe
from tacit.core.db import Conversation, MessageRow
from tacit.core.domain import ChatEvent, FeedbackCandidate, Role
from tacit.ingest.sink import PostgresSink, SinkBatch
from tacit.ingest.store import PendingStore
from tacit.labels.base import Labeler
from tacit.refine.mining import Miner
from tacit.refine.pipeline import with_refinements
from tacit.refine.refusal import HEURISTIC, RefusalValidator

CONVERSATIONS_PER_CHUNK = 200


@dataclass(frozen=True)
class Scope:
    """Which conversations to relabel: a tenant's (or all), seen since a time (or ever)."""

    tenant: str | None = None
    since: datetime | None = None

    def conversations(self):
        query = select(Conversation.tenant, Conversation.conversation_id)
        if self.tenant is not None:
            query = query.where(Conversation.tenant == self.tenant)
        if self.since is not None:
            query = query.where(Conversation.last_seen_at >= self.since)
        return query


def count_conversations(engine: Engine, scope: Scope) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(scope.conversations().subquery()))


def relabel(engine: Engine, labeler: Labeler, scope: Scope, window: int, miner: Miner | None,
            validator: RefusalValidator = HEURISTIC,
            on_chunk: Callable[[int], None] = lambda conversations: None) -> Counter[str]:
    """Relabel the conversations in ``scope``; returns the number of rows written per stage."""
    sink = PostgresSink(engine)
    written: Counter[str] = Counter()
    for keys in _chunks(engine, scope):
        with engine.connect() as conn:
            candidates = _candidates(conn, keys, window)
        if candidates:
            pairs = with_refinements(candidates, labeler.label(candidates), validator)
            if miner is not None:
                pairs, _ = miner.mine_batch(pairs)
            sink.write(SinkBatch(events=(), labeled=pairs, dead_letters=()))
            written.update(label.stage for _, label in pairs)
        on_chunk(len(keys))
    if miner is not None:
        PendingStore(engine).finalise_idle(miner.idle_seconds)
    return written


def _chunks(engine: Engine, scope: Scope) -> Iterator[list[tuple[str, str]]]:
    query = scope.conversations().order_by(Conversation.tenant, Conversation.conversation_id)
    with engine.connect() as conn:
        result = conn.execute(query.execution_options(yield_per=CONVERSATIONS_PER_CHUNK))
        for chunk in result.partitions():
            yield [tuple(row) for row in chunk]


def _candidates(conn: Connection, keys: Sequence[tuple[str, str]], window: int) -> list[FeedbackCandidate]:
    rows = conn.execute(
        select(MessageRow.__table__)
        .where(tuple_(MessageRow.tenant, MessageRow.conversation_id).in_(keys))
        .order_by(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index)
    )
    candidates, windows = [], {}
    for row in rows:
        key = (row.tenant, row.conversation_id)
        observation = observe(windows.get(key, ConversationWindow()), _event(row), window)
        windows[key] = observation.window
        candidates += observation.candidates
    return candidates


def _event(row: Row) -> ChatEvent:
    return ChatEvent(event_id=row.event_id, tenant=row.tenant, conversation_id=row.conversation_id,
                     turn_index=row.turn_index, role=Role(row.role), content=row.content, user_id=row.user_id,
                     assistant_model=row.assistant_model, timestamp=row.created_at, language=row.language,
                     metadata=row.metadata)
