"""The training job on real Postgres and the embedded Ray: dataset query, Ray task, registry, artifact.

Each test gets its own database in the shared embedded Postgres (the fixtures ``isolated`` and ``engine``
of conftest.py), so version numbering and champion status do not depend on what other integration tests
registered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from transformers import AutoModelForSequenceClassification

from tacit.core.db import ModelStatus, RunStatus, TrainingRun
from tacit.core.domain import Role
from tacit.core.examples import Selection, load_examples
from tacit.core.registry import champion, decisions, get_version
from tacit.core.settings import TacitSettings
from tacit.trainer.job import run_training
from tacit.trainer.train import TooFewExamples
from tests.helpers.feedback import CONVERSATIONS, insert_feedback

pytestmark = pytest.mark.integration


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
    assert next((d.action, d.reasons) for d in decisions(engine, first)) == ("promoted", ["no champion yet"])
    gated = decisions(engine, second)[0]
    assert get_version(engine, second).status == {"promoted": "champion", "rejected": "rejected"}[gated.action]
    assert version.status == {"promoted": "retired", "rejected": "champion"}[gated.action]
    assert gated.reasons[0] == f"compared with the global champion, version {first}, on the same data"
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
    assert model.config.tacit["levels"] == [1, 2, 3, 4, 5]
    assert model.config.num_labels == 4
    card = (Path(version.artifact_uri) / "README.md").read_text()
    assert f"# Tacit reward model, version {first}" in card and "**promoted** (no champion yet)" in card
    assert f"{run.num_examples} examples" in card and "| holdout_qwk |" in card


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
    assert model.config.tacit["levels"] == [1, 2, 3, 4, 5]
