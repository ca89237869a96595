"""Feedback signals in PostgreSQL: stored before their message arrives, once however often delivered."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import ModelVersion, SignalRow, TrainingRun
from tacit.core.domain import SIGNAL, ChatEvent, Role
from tacit.core.examples import load_examples
from tacit.core.fusion import FusionRule
from tacit.ingest.sink import PostgresSink, SinkBatch
from tacit.trainer.job import run_training
from tests.helpers.feedback import insert_feedback, message, rating

pytestmark = pytest.mark.integration


def thumbs_down(event_id: str = "s1", conversation_id: str = "c1", turn: int = 1):
    return SIGNAL.validate_python({"event_id": event_id, "tenant": "acme", "conversation_id": conversation_id,
                                   "message_turn": turn, "signal": "thumbs", "up": False, "comment": "no"})


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


def test_training_examples_fuse_each_follow_up_label_with_the_signals_on_its_reply(engine: Engine) -> None:
    texts = ["Sort a list?", "Use sorted().", "Thanks!", "Case-insensitive?", "Use key=str.lower.", "And?"]
    with Session(engine) as session, session.begin():
        session.add_all([message("c1", turn, Role.USER if turn % 2 == 0 else Role.ASSISTANT, text, "u1")
                         for turn, text in enumerate(texts)])
        session.add_all([rating("c1", "u1", 1, 5), rating("c1", "u1", 3, 3)])
    regenerate = SIGNAL.validate_python({"tenant": "acme", "conversation_id": "c1", "message_turn": 3,
                                         "signal": "regenerate"})
    PostgresSink(engine).write(SinkBatch(events=(), labeled=(), dead_letters=(),
                                         signals=[thumbs_down(), regenerate, thumbs_down("s3", "other")]))

    plain = {example.response_turn: (example.level, example.fusion) for example in load_examples(engine)}
    fused = {example.response_turn: (example.level, example.fusion)
             for example in load_examples(engine, fusion=FusionRule())}

    assert plain == {1: (5, None), 3: (3, None)}
    assert fused == {1: (2, "follow-up 5 against thumbs down; signals win: 2"),
                     3: (2, "follow-up 3 -> 2 by regenerate")}


def test_signal_heads_read_thumbs_targets_and_the_replies_nobody_answered(engine: Engine) -> None:
    chat = [(Role.USER, "Sort a list?"), (Role.ASSISTANT, "Use sorted()."), (Role.USER, "Thanks!"),
            (Role.ASSISTANT, "Anything else?")]
    with Session(engine) as session, session.begin():
        session.add_all([message("c1", turn, role, text, "u1") for turn, (role, text) in enumerate(chat)])
        session.add_all([message("c2", turn, role, text, "u2")  # the user spoke last: nothing ended
                         for turn, (role, text) in enumerate(chat[:3])])
        session.add(rating("c1", "u1", 1, 5))
    PostgresSink(engine).write(SinkBatch(events=(), labeled=(), dead_letters=(), signals=[thumbs_down()]))

    examples = load_examples(engine, ended_after=timedelta(0))

    assert [(e.conversation_id, e.response_turn, e.level, e.thumbs_up, e.continued) for e in examples] == [
        ("c1", 1, 5, 0.0, True), ("c1", 3, None, None, False)]
    assert (examples[1].query, examples[1].response, examples[1].user_id) == ("Thanks!", "Anything else?", "u1")
    assert len(load_examples(engine, ended_after=timedelta(hours=1))) == 1  # not idle long enough to have ended
    assert [e.continued for e in load_examples(engine)] == [None]


def test_a_training_run_reads_fused_targets_and_records_the_setting(isolated, engine: Engine, caplog) -> None:
    insert_feedback(engine)
    PostgresSink(engine).write(SinkBatch(events=(), labeled=(), dead_letters=(),
                                         signals=[thumbs_down("s1", "conv-1"), thumbs_down("s2", "conv-2", 3)]))

    with caplog.at_level(logging.INFO, logger="tacit.core.examples"):
        run_training(isolated, use_ray=False, steps=1)
    with engine.connect() as conn:
        params = conn.scalar(select(TrainingRun.params))
    assert params["feedback_fusion"] is True
    assert "Fusion: signals counted on 2 of 62 examples." in caplog.text


def test_a_training_run_with_signal_heads_saves_and_records_them(isolated, engine: Engine) -> None:
    insert_feedback(engine)
    PostgresSink(engine).write(SinkBatch(events=(), labeled=(), dead_letters=(),
                                         signals=[thumbs_down("s1", "conv-1")]))

    version = run_training(isolated.model_copy(update={"train_heads": ("thumbs_up", "continue")}),
                           use_ray=False, steps=1)

    with engine.connect() as conn:
        params = conn.scalar(select(TrainingRun.params))
        uri = conn.scalar(select(ModelVersion.artifact_uri).where(ModelVersion.id == version))
    assert params["heads"] == ["thumbs_up", "continue"]
    assert json.loads((Path(uri) / "config.json").read_text())["tacit"]["heads"] == ["thumbs_up", "continue"]
