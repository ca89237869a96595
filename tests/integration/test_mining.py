"""Implicit-feedback mining in a real worker (private Tansu and PostgreSQL): pending rows, their move to
refined by a later batch and by the idle sweep, and `tacit relabel` deriving the same rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tacit.core.db import FeedbackRow, make_engine
from tacit.core.domain import PENDING, REFINED, ChatEvent, Role
from tacit.core.endpoints import Endpoints
from tacit.core.settings import TacitSettings
from tacit.devstack import stack
from tacit.ingest.events import encode_event
from tacit.ingest.relabel import Scope, relabel
from tacit.labels.rules import RulesLabeler
from tacit.refine.mining import Miner
from tests.helpers import wait_until
from tests.helpers.mining import FRIDGE_ASK, FRIDGE_THANKS, KETO_ASK, KETO_THANKS, REPLY
from tests.helpers.stream import produce, worker

pytestmark = pytest.mark.integration

TENANT = "mining"
IDLE_SECONDS = 8.0  # long enough for the test to send the second half of a conversation before it is idle
OPENING = "What is a ketogenic diet and how does it work?"
CONVERSATIONS = {"keto": [OPENING, REPLY, KETO_ASK, REPLY, KETO_THANKS],
                 "fridge": [OPENING, REPLY, FRIDGE_ASK, REPLY, FRIDGE_THANKS]}


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TacitSettings, Endpoints]]:
    settings = TacitSettings(data_dir=tmp_path_factory.mktemp("mining"), ray_address="not-used:1",
                             mining_idle_seconds=IDLE_SECONDS, sink_batch_seconds=0.2)
    try:
        yield settings, stack.up(settings, report=lambda line: None)
    finally:
        stack.down(settings, report=lambda line: None)


def send(endpoints: Endpoints, settings: TacitSettings, conversation: str, turns: range) -> None:
    events = [ChatEvent(tenant=TENANT, conversation_id=conversation, turn_index=turn,
                        role=Role.USER if turn % 2 == 0 else Role.ASSISTANT,
                        content=CONVERSATIONS[conversation][turn], user_id="u1") for turn in turns]
    asyncio.run(produce(endpoints.kafka_bootstrap, settings.chat_events_topic, [encode_event(e) for e in events]))


def derived(engine: Engine, column=None) -> dict[tuple[str, int], tuple]:
    """(conversation, reply turn) -> (stage, level, reason[, column]) of every derived row of the tenant."""
    extra = () if column is None else (column,)
    with engine.connect() as conn:
        rows = conn.execute(select(FeedbackRow.conversation_id, FeedbackRow.response_turn, FeedbackRow.stage,
                                   FeedbackRow.level, FeedbackRow.reason, *extra)
                            .where(FeedbackRow.tenant == TENANT, FeedbackRow.stage != "raw")).all()
    assert len({(c, turn) for c, turn, *_ in rows}) == len(rows), f"an item with two derived rows: {rows}"
    return {(c, turn): tuple(values) for c, turn, *values in rows}


def last_rated(engine: Engine, conversation: str, followup_turn: int) -> datetime:
    """When the raw row of a follow-up was last written (every delivery of it rewrites it)."""
    with engine.connect() as conn:
        return conn.scalar(select(FeedbackRow.updated_at).where(
            FeedbackRow.tenant == TENANT, FeedbackRow.conversation_id == conversation,
            FeedbackRow.followup_turn == followup_turn, FeedbackRow.stage == "raw"))


def test_pending_items_are_decided_by_later_turns_or_idleness(private, monkeypatch) -> None:
    settings, endpoints = private
    monkeypatch.setenv("TACIT_MINING_IDLE_SECONDS", str(IDLE_SECONDS))
    monkeypatch.setenv("TACIT_WORKER_METRICS_PORT", str(stack.free_port()))
    engine = make_engine(endpoints.database_url)
    log = settings.data_dir / "logs" / "mining.log"
    with worker(settings, "mining"):
        send(endpoints, settings, "keto", range(3))
        send(endpoints, settings, "fridge", range(5))
        wait_until(lambda: len(derived(engine)) == 3, "the first follow-ups labeled", log)
        assert derived(engine)[("keto", 1)][:2] == (PENDING, 3)
        assert derived(engine)[("fridge", 1)][:2] == (PENDING, 3)  # an unrelated thanks: still waiting
        pending_id = derived(engine, FeedbackRow.id)[("keto", 1)][3]

        send(endpoints, settings, "keto", range(3, 5))  # a later batch: the similar thanks decides turn 1
        wait_until(lambda: derived(engine).get(("keto", 1), ("",))[0] == REFINED, "keto mined", log)
        mined = derived(engine)[("keto", 1)]
        assert mined[1] == 5 and mined[2].startswith("mined: follow-up at turn 4 is level 5, cosine 0.60")
        assert derived(engine, FeedbackRow.id)[("keto", 1)][3] > pending_id  # a new label for `tacit schedule`

        stored_at = last_rated(engine, "keto", 4)
        send(endpoints, settings, "keto", range(5))  # delivered again: the same rows
        wait_until(lambda: last_rated(engine, "keto", 4) > stored_at, "the redelivery stored", log)
        assert derived(engine)[("keto", 1)] == mined

        # nothing more comes for the fridge conversation: the idle sweep finalises it, level unchanged
        wait_until(lambda: derived(engine)[("fridge", 1)][0] == REFINED, "fridge finalised when idle", log)
        assert derived(engine)[("fridge", 1)] == (REFINED, 3, "neutral: no explicit feedback")
    streamed = derived(engine)
    assert {key: value[:2] for key, value in streamed.items()} == {
        ("keto", 1): (REFINED, 5), ("keto", 3): (REFINED, 5),
        ("fridge", 1): (REFINED, 3), ("fridge", 3): (REFINED, 5)}

    miner = Miner.from_settings(settings)
    relabel(engine, RulesLabeler(), Scope(tenant=TENANT), settings.conversation_window, miner)
    assert derived(engine) == streamed
