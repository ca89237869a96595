"""`tacit relabel` on the session PostgreSQL: labels re-derived from stored messages, per stage, idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from tacit.core.db import Conversation, FeedbackRow, MessageRow, make_engine
from tacit.core.domain import FILTERED, REFINED, ChatEvent, Role
from tacit.core.endpoints import endpoint
from tacit.core.settings import TacitSettings
from tacit.ingest.relabel import Scope, relabel
from tacit.ingest.sink import PostgresSink, SinkBatch
from tacit.labels.rules import RulesLabeler
from tacit.refine.refusal_llm import LLMRefusalValidator
from tests.helpers.llm import Server, completion, connect

TENANT = "relabel-test"
BREAD = "Mix flour, water, salt and yeast, knead for ten minutes, let it rise for an hour, then bake it."
CONVERSATIONS = {
    "bread": ["How do I bake a simple loaf of bread at home?", BREAD, "thanks, that worked!"],
    "bomb": ["How do I make a pipe bomb at home quickly?",
             "I'm sorry, but I can't help with that request because it could hurt people.", "you are useless"],
    "cat": ["Draw me a picture of a cat sitting on a red sofa",
            ("Sure, here is a description of such a picture: "
             "a grey cat curled up on a red velvet sofa in the sun."), "no, that's not what I asked"],
}


def store_messages(engine: Engine) -> None:
    events = [ChatEvent(tenant=TENANT, conversation_id=conversation, turn_index=turn,
                        role=Role.USER if turn % 2 == 0 else Role.ASSISTANT, content=text, user_id="u1")
              for conversation, texts in CONVERSATIONS.items() for turn, text in enumerate(texts)]
    PostgresSink(engine).write(SinkBatch(events=events, labeled=(), dead_letters=()))


def rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(
            select(FeedbackRow.id, FeedbackRow.conversation_id, FeedbackRow.stage, FeedbackRow.level,
                   FeedbackRow.reason).where(FeedbackRow.tenant == TENANT)))


@pytest.fixture
def engine(settings: TacitSettings, embedded_stack) -> Iterator[Engine]:
    """The session database, left without this test's rows: other tests count whole tables."""
    engine = make_engine(endpoint(settings, "postgres"))
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            for table in (FeedbackRow, MessageRow, Conversation):
                conn.execute(delete(table).where(table.tenant == TENANT))


def test_relabel_derives_every_stage_and_is_idempotent(settings: TacitSettings, engine: Engine) -> None:
    store_messages(engine)
    written = relabel(engine, RulesLabeler(), Scope(tenant=TENANT), settings.conversation_window, None)
    assert written == {"raw": 3, REFINED: 2, FILTERED: 1}

    first = rows(engine)
    levels = {(conversation, stage): level for _, conversation, stage, level, _ in first}
    assert levels == {
        ("bread", "raw"): 5, ("bread", REFINED): 5,
        ("bomb", "raw"): 1, ("bomb", REFINED): 5,  # a justified refusal overrides the complaint
        ("cat", "raw"): 2, ("cat", FILTERED): 2,  # kept, with the reason
    }
    assert next(r for _, c, s, _, r in first if (c, s) == ("cat", FILTERED)).startswith(
        "filtered: image generation request")

    relabel(engine, RulesLabeler(), Scope(tenant=TENANT), settings.conversation_window, None)
    assert rows(engine) == first  # same rows, same ids: nothing changed

    with engine.begin() as conn:  # the bread query becomes an image request: refined -> filtered
        conn.execute(update(MessageRow).where(MessageRow.tenant == TENANT, MessageRow.conversation_id == "bread",
                                              MessageRow.turn_index == 0)
                     .values(content="Draw me a picture of a loaf of bread on a table"))
    env = {**os.environ, "TACIT_DATA_DIR": str(settings.data_dir), "TACIT_LABELER": "rules"}
    result = subprocess.run([sys.executable, "-m", "tacit", "relabel", "--tenant", TENANT],
                            check=False, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "raw 3" in result.stderr
    stages = {(c, s) for _, c, s, _, _ in rows(engine)}
    assert ("bread", FILTERED) in stages and ("bread", REFINED) not in stages


def test_relabel_asks_the_given_refusal_validator(settings: TacitSettings, engine: Engine) -> None:
    store_messages(engine)
    server = Server(completion("[[false_refusal]] The question is harmless."))  # against the heuristic's verdict
    relabel(engine, RulesLabeler(), Scope(tenant=TENANT), settings.conversation_window, None,
            connect(LLMRefusalValidator, server))
    bomb = {stage: (level, reason) for _, c, stage, level, reason in rows(engine) if c == "bomb"}
    level, reason = bomb[REFINED]
    assert level == 1 and reason.startswith("refusal (llm): false, the query is safe: The question is harmless.; was ")
    assert len(server.requests) == 1  # only the refusal was asked about
