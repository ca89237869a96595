"""The sink stores a label's per-level probabilities, and the store gives them back to mining."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tacit.core.db import FeedbackRow
from tacit.core.domain import (
    PENDING,
    RAW,
    ChatEvent,
    FeedbackCandidate,
    Label,
    Message,
    Role,
    SatisfactionLevel,
)
from tacit.ingest.sink import PostgresSink, SinkBatch
from tacit.ingest.store import PendingStore

pytestmark = pytest.mark.integration

TURNS = ("How do I reverse a list in Python?", "Use items.reverse().", "That's not what I asked, I want a copy.")
PROBABILITIES = (0.05, 0.55, 0.3, 0.07, 0.03)


def stored_conversation(engine: Engine) -> FeedbackCandidate:
    events = [ChatEvent(tenant="probabilities", conversation_id="c1", turn_index=turn,
                        role=Role.USER if turn % 2 == 0 else Role.ASSISTANT, content=text)
              for turn, text in enumerate(TURNS)]
    PostgresSink(engine).write(SinkBatch(events=events, labeled=(), dead_letters=()))
    query, response, followup = (Message(e.role, e.content, e.turn_index) for e in events)
    return FeedbackCandidate("probabilities", "c1", None, (), query, response, followup)


def test_probabilities_are_stored_with_the_label_and_read_back(engine: Engine) -> None:
    candidate = stored_conversation(engine)
    raw = Label(SatisfactionLevel.ERROR_CORRECTION, 0.55, "calibrated: p(2)=0.55", "calibrated", "1",
                probabilities=PROBABILITIES)
    without = replace(raw, labeler_id="rules", probabilities=None)
    pending = replace(raw, level=SatisfactionLevel.NEUTRAL, stage=PENDING)
    PostgresSink(engine).write(SinkBatch(events=(), labeled=[(candidate, raw), (candidate, without),
                                                             (candidate, pending)], dead_letters=()))

    with engine.connect() as conn:
        rows = dict(conn.execute(select(FeedbackRow.labeler_id, FeedbackRow.probabilities)
                                 .where(FeedbackRow.stage == RAW)).all())
    assert rows["calibrated"] == pytest.approx(list(PROBABILITIES)) and rows["rules"] is None
    stored, _ = PendingStore(engine).pending({("probabilities", "c1")})
    assert [item.label.probabilities for item in stored] == [pytest.approx(PROBABILITIES)]
