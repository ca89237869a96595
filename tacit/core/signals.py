"""Stored feedback signals read back as the events they came as, keyed by the message they are about.

Signals are joined to messages only here, when read: one may have been stored before its message arrived.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.engine import Engine

from tacit.core.db import SignalRow
from tacit.core.domain import SIGNAL, SignalEvent

MessageKey = tuple[str, str, int]  # tenant, conversation id, turn index


def load_signals(engine: Engine, tenants: Collection[str] = ()) -> dict[MessageKey, list[SignalEvent]]:
    """Every stored signal (of ``tenants``, when given), oldest first, by the message it is about."""
    statement = select(SignalRow).order_by(SignalRow.created_at, SignalRow.id)
    if tenants:
        statement = statement.where(SignalRow.tenant.in_(tenants))
    signals: dict[MessageKey, list[SignalEvent]] = {}
    with engine.connect() as connection:
        for row in connection.execute(statement):
            signals.setdefault((row.tenant, row.conversation_id, row.message_turn), []).append(_event(row))
    return signals


def _event(row) -> SignalEvent:
    return SIGNAL.validate_python({
        "event_id": row.event_id, "tenant": row.tenant, "conversation_id": row.conversation_id,
        "message_turn": row.message_turn, "timestamp": row.created_at, "signal": row.kind, **row.detail,
    })
