"""The training job on real Postgres and the embedded Ray: dataset query, Ray task, registry, artifact.

Each test gets its own database in the shared embedded Postgres, so version numbering and champion status
do not depend on what other integration tests registered.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from transformers import AutoModelForSequenceClassification

from tacit.core import db
from tacit.core.db import FeedbackRow, MessageRow, ModelStatus, RunStatus, TrainingRun, make_engine
from tacit.core.domain import Role
from tacit.core.endpoints import Endpoints
from tacit.core.examples import Selection, load_examples
from tacit.core.registry import champion, decisions, get_version
from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS
from tacit.trainer.job import run_training
from tacit.trainer.train import TooFewExamples

pytestmark = pytest.mark.integration

CONVERSATIONS = 30
LEVELS = (1, 2, 4, 5, 3)  # a neutral fifth, which the wildfb scheme drops
_databases = itertools.count()


@pytest.fixture
def isolated(embedded_stack: Endpoints, settings: TacitSettings, tmp_path: Path) -> TacitSettings:
    """Settings pointing at a fresh, migrated database and a private models directory."""
    server = make_url(embedded_stack.database_url)
    name = f"trainer_test_{next(_databases)}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    return settings.model_copy(
        update={"database_url": url, "ray_address": embedded_stack.ray_address,
                "kafka_bootstrap": embedded_stack.kafka_bootstrap, "data_dir": tmp_path,
                "eval_benchmarks": (small_benchmark(tmp_path),)}
    )


def small_benchmark(directory: Path, pairs: int = 16) -> Path:
    """The first pairs of the bundled HH-RLHF benchmark: the real evaluation path, in a second."""
    path = directory / "hh_small.jsonl"
    with gzip.open(HELDOUT_PAIRS, "rt") as lines:
        path.write_text("".join(itertools.islice(lines, pairs)))
    return path


@pytest.fixture
def engine(isolated: TacitSettings) -> Iterator[Engine]:
    engine = make_engine(isolated.database_url)
    yield engine
    engine.dispose()


def message(conversation: str, turn: int, role: Role, content: str, user: str) -> MessageRow:
    return MessageRow(
        event_id=f"{conversation}-{turn}", tenant="acme", conversation_id=conversation, turn_index=turn,
        role=role.value, content=content, user_id=user, metadata_={}, created_at=func.now(),
    )


def rating(conversation: str, user: str, response_turn: int, level: int, *, query_turn: int | None = -1,
           labeler: str = "rules", stage: str = "refined") -> FeedbackRow:
    return FeedbackRow(
        tenant="acme", conversation_id=conversation, user_id=user,
        query_turn=response_turn - 1 if query_turn == -1 else query_turn, response_turn=response_turn,
        followup_turn=response_turn + 1, level=level, confidence=0.9, reason="", labeler_id=labeler,
        labeler_version="1", stage=stage,
    )


def insert_feedback(engine: Engine) -> None:
    """30 five-turn conversations rated twice each, one rated reply that opened its chat, and ratings by a
    second labeler and at another stage (training reads the refined stage by default)."""
    rows: list = []
    for i in range(CONVERSATIONS):
        conversation, user = f"conv-{i}", f"user-{i % 12}"
        rows += [
            message(conversation, 0, Role.USER, f"How do I sort list number {i} in Python?", user),
            message(conversation, 1, Role.ASSISTANT, "Use sorted(items), or items.sort() in place.", user),
            message(conversation, 2, Role.USER, "And in reverse order?", user),
            message(conversation, 3, Role.ASSISTANT, "Pass reverse=True to either of them.", user),
            message(conversation, 4, Role.USER, "Thanks, that fixed it!", user),
            rating(conversation, user, 1, LEVELS[2 * i % 5]),
            rating(conversation, user, 3, LEVELS[(2 * i + 1) % 5]),
        ]
    rows += [
        message("opener", 0, Role.ASSISTANT, "Hi! I can help with Python questions.", "user-99"),
        message("opener", 1, Role.USER, "Great, I love that.", "user-99"),
        rating("opener", "user-99", 0, 4, query_turn=None),
        rating("conv-0", "user-0", 1, 5, labeler="llm"),
        rating("conv-0", "user-0", 1, 4, stage="raw"),
    ]
    with Session(engine) as session, session.begin():
        session.add_all(rows)


def test_load_examples_rebuilds_each_rated_reply(engine: Engine) -> None:
    insert_feedback(engine)

    examples = load_examples(engine)
    by_key = {(e.conversation_id, e.response): e for e in load_examples(engine, Selection(labelers=("rules",)))}

    assert len(examples) == 2 * CONVERSATIONS + 2
    assert len(by_key) == 2 * CONVERSATIONS + 1
    second = by_key["conv-3", "Pass reverse=True to either of them."]
    assert [m.turn_index for m in second.history] == [0, 1]
    assert second.history[1].role is Role.ASSISTANT
    assert (second.query, second.user_id, second.tenant) == ("And in reverse order?", "user-3", "acme")
    opener = by_key["opener", "Hi! I can help with Python questions."]
    assert (opener.history, opener.query, opener.level) == ((), "", 4)
    assert [e.level for e in load_examples(engine, Selection(stages=("raw",)))] == [4]
    assert len(load_examples(engine, Selection(tenants=("other",)))) == 0
    assert {e.level for e in load_examples(engine, Selection(levels=(1, 5)))} == {1, 5}
    assert len(load_examples(engine, Selection(since=datetime.now(UTC) + timedelta(hours=1)))) == 0
    assert len(load_examples(engine, Selection(until=datetime.now(UTC) + timedelta(hours=1)))) == len(examples)


def test_ray_training_evaluates_gates_and_registers(isolated: TacitSettings, engine: Engine) -> None:
    insert_feedback(engine)

    first = run_training(isolated, use_ray=True, steps=4)
    second = run_training(isolated, use_ray=False, steps=2)

    version = get_version(engine, first)
    assert version.status == ModelStatus.CHAMPION.value
    assert next((d.action, d.reasons) for d in decisions(engine, first)) == ("promoted", ["no champion yet"])
    gated = decisions(engine, second)[0]
    assert get_version(engine, second).status == {"promoted": "champion", "rejected": "rejected"}[gated.action]
    assert gated.reasons[0] == f"compared with champion version {first} on the same data"
    assert version.metrics["holdout_examples"] > 0
    assert {"holdout_accuracy", "holdout_qwk", "holdout_ece", "pairwise_hh_small"} <= set(version.metrics)
    assert version.metrics["holdout_reliability"] and version.metrics["margin_curve_hh_small"]
    with Session(engine) as session:
        run = session.get(TrainingRun, version.training_run_id)
    assert run.status == RunStatus.SUCCEEDED.value
    assert run.ray_job_id and run.num_examples == 2 * CONVERSATIONS + 2
    assert run.params["steps"] == 4 and run.finished_at is not None
    assert {"load", "train", "evaluate"} <= set(run.timings)

    model = AutoModelForSequenceClassification.from_pretrained(version.artifact_uri)
    assert Path(version.artifact_uri).is_relative_to(isolated.models_dir)
    assert model.config.tacit["levels"] == [1, 2, 4, 5]
    assert model.config.num_labels == 3


def test_failed_ray_run_is_recorded_and_raised_as_itself(isolated: TacitSettings, engine: Engine) -> None:
    with pytest.raises(TooFewExamples, match="Only 0 of 0") as raised:
        run_training(isolated, use_ray=True, steps=2)

    assert raised.type is TooFewExamples  # not Ray's wrapper around it
    with engine.connect() as connection:
        status, error = connection.execute(select(TrainingRun.status, TrainingRun.error)).one()
    assert status == RunStatus.FAILED.value
    assert error.startswith("TooFewExamples: Only 0 of 0")
    assert champion(engine) is None


def test_two_ray_train_workers_train_data_parallel(isolated: TacitSettings, engine: Engine) -> None:
    insert_feedback(engine)

    version = get_version(engine, run_training(isolated, workers=2, steps=3))

    assert version.status == ModelStatus.CHAMPION.value
    assert version.metrics["steps"] == 3 and "holdout_qwk" in version.metrics
    with Session(engine) as session:
        run = session.get(TrainingRun, version.training_run_id)
    assert run.params["workers"] == 2 and run.ray_job_id
    model = AutoModelForSequenceClassification.from_pretrained(version.artifact_uri)
    assert model.config.tacit["levels"] == [1, 2, 4, 5]
