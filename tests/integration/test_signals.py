"""Feedback signals in PostgreSQL: stored before their message arrives, once however often delivered."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tacit.core.db import SignalRow
from tacit.core.domain import SIGNAL, ChatEvent, Role
from tacit.ingest.sink import PostgresSink, SinkBatch

pytestmark = pytest.mark.integration


def thumbs_down(event_id: str = "s1"):
    return SIGNAL.validate_python({"event_id": event_id, "tenant": "acme", "conversation_id": "c1",
                                   "message_turn": 1, "signal": "thumbs", "up": False, "comment": "no"})


def test_a_signal_before_its_message_is_kept_and_a_redelivery_changes_nothing(engine: Engine) -> None:
    sink = PostgresSink(engine)
    sink.write(SinkBatch(events=(), labeled=(), dead_letters=(), signals=[thumbs_down()]))
    reply = ChatEvent(tenant="acme", conversation_id="c1", turn_index=1, role=Role.ASSISTANT, content="Use sorted().")
    sink.write(SinkBatch(events=[reply], labeled=(), dead_letters=(), signals=[thumbs_down(), thumbs_down("s2")]))

    with engine.connect() as conn:
        rows = conn.execute(select(SignalRow.event_id, SignalRow.kind, SignalRow.detail)
                            .order_by(SignalRow.event_id)).all()
    assert [tuple(row) for row in rows] == [("s1", "thumbs", {"up": False, "comment": "no"}),
                                             ("s2", "thumbs", {"up": False, "comment": "no"})]
