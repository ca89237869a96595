"""Registry, promotion gate and schedule on real Postgres and Tansu: one champion, decisions with reasons,
NOTIFY and Kafka announcements, rollback, refusal of a worse model, the training lock, a scheduled run."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tacit import cli
from tacit.core.cli import Wiring
from tacit.core.db import MODEL_EVENTS_CHANNEL, Lease, ModelStatus, ModelVersion, TrainingRun
from tacit.core.domain import Role
from tacit.core.registry import (
    RegistryError,
    TrainingInProgress,
    champion,
    decisions,
    get_version,
    promote,
    register_version,
    rollback,
    training_lock,
)
from tacit.core.settings import TacitSettings
from tacit.trainer.job import run_training
from tacit.trainer.schedule import Schedule, run_schedule
from tests.helpers.feedback import message, rating

pytestmark = pytest.mark.integration

GOOD = "Here is a complete, working answer with an example you can run."
BAD = "I cannot help with that."


def versions(engine: Engine, count: int, tmp_path: Path) -> list[int]:
    return [
        register_version(engine, run_id=None, base_model="base", artifact_uri=str(tmp_path / f"v{i}"), metrics={})
        for i in range(count)
    ]


def listener(settings: TacitSettings) -> psycopg.Connection:
    url = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = psycopg.connect(url, autocommit=True)
    connection.execute(f"LISTEN {MODEL_EVENTS_CHANNEL}")
    return connection


def kafka_events(settings: TacitSettings, artifact_prefix: str) -> list[dict]:
    """Every event on the model-events topic about this test's artifacts (the broker is shared)."""

    async def consume() -> list[dict]:
        consumer = AIOKafkaConsumer(settings.model_events_topic, bootstrap_servers=settings.kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=5_000)
            records = [json.loads(r.value) for batch in batches.values() for r in batch]
        finally:
            await consumer.stop()
        return [event for event in records if event["artifact_uri"].startswith(artifact_prefix)]

    return asyncio.run(consume())


def test_promotion_keeps_one_champion_records_why_and_announces(
    isolated: TacitSettings, engine: Engine, tmp_path: Path
) -> None:
    first, second = versions(engine, 2, tmp_path)
    listening = listener(isolated)

    for version in (first, second):
        promote(engine, version, reason=f"test {version}", settings=isolated)

    assert (get_version(engine, first).status, champion(engine).id) == (ModelStatus.RETIRED.value, second)
    assert [(d.action, d.reasons) for d in decisions(engine, first)] == [
        ("promoted", [f"test {first}"]), ("retired", [f"replaced by version {second}"])]
    notified = [json.loads(n.payload) for n in listening.notifies(timeout=5, stop_after=2)]
    listening.close()
    expected = [{"event": "promoted", "version": v, "artifact_uri": str(tmp_path / f"v{i}"), "tenant": None}
                for i, v in enumerate((first, second))]
    assert notified == expected
    assert kafka_events(isolated, str(tmp_path)) == expected
    with pytest.raises(RegistryError, match="already the champion"):
        promote(engine, second, reason="again", settings=isolated)


def test_database_refuses_a_second_champion(isolated: TacitSettings, engine: Engine, tmp_path: Path) -> None:
    first, second = versions(engine, 2, tmp_path)
    promote(engine, first, reason="first", settings=isolated)

    with pytest.raises(IntegrityError, match="uq_model_versions_one_champion"), engine.begin() as connection:
        connection.execute(update(ModelVersion).where(ModelVersion.id == second).values(status="champion"))


def test_rollback_rejects_the_champion_and_restores_the_previous_one(
    isolated: TacitSettings, engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(RegistryError, match="No earlier champion"):
        rollback(engine, reason="nothing yet", settings=isolated)
    first, second, third = versions(engine, 3, tmp_path)
    for version in (first, second, third):
        promote(engine, version, reason="test", settings=isolated)

    event = rollback(engine, reason="v3 misbehaves", settings=isolated)

    assert event["version"] == second and champion(engine).id == second
    assert get_version(engine, third).status == ModelStatus.REJECTED.value
    assert decisions(engine, second)[-1].reasons == ["v3 misbehaves"]


def insert_clear_signal(engine: Engine, conversations: int = 40) -> None:
    """Ratings that follow the reply: helpful replies satisfied, refusals rejected; a model can learn it."""
    rows: list = []
    for i in range(conversations):
        conversation, user, level = f"clear-{i}", f"user-{i % 16}", (1, 2, 4, 5)[i % 4]
        rows += [
            message(conversation, 0, Role.USER, f"How do I parse file number {i} in Python?", user),
            message(conversation, 1, Role.ASSISTANT, GOOD if level > 3 else BAD, user),
            rating(conversation, user, 1, level),
        ]
    with Session(engine) as session, session.begin():
        session.add_all(rows)


def write_benchmark(path: Path) -> Path:
    records = [{"prompt": f"How do I parse file number {i} in Python?", "chosen": GOOD, "rejected": BAD}
               for i in range(8)]
    path.write_text("\n".join(json.dumps(record) for record in records))
    return path


def test_gate_promotes_a_good_model_and_refuses_a_worse_one(
    isolated: TacitSettings, engine: Engine, tmp_path: Path
) -> None:
    insert_clear_signal(engine)
    settings = isolated.model_copy(update={"eval_benchmarks": (write_benchmark(tmp_path / "clear.jsonl"),),
                                           "learning_rate": 2e-4})

    good = run_training(settings, use_ray=False, steps=30)
    worse = run_training(settings, use_ray=False, steps=1, learning_rate=1e-7)
    continued = run_training(settings.model_copy(update={"gate_tolerance": 1.0}), use_ray=False, steps=2,
                             incremental=True)

    assert get_version(engine, good).metrics["pairwise_clear"] == 1.0
    assert get_version(engine, worse).status == ModelStatus.REJECTED.value
    assert any("regressed" in reason for reason in decisions(engine, worse)[0].reasons)
    assert champion(engine).id == continued
    assert get_version(engine, continued).base_model == get_version(engine, good).artifact_uri
    assert get_version(engine, good).status == ModelStatus.RETIRED.value


def test_training_lock_refuses_a_second_run(isolated: TacitSettings, engine: Engine) -> None:
    with training_lock(engine), pytest.raises(TrainingInProgress, match="in progress"):
        run_training(isolated, use_ray=False, steps=1)

    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(TrainingRun)) == 0


def test_the_training_lease_refuses_a_second_run_and_is_taken_over_once_expired(
    isolated: TacitSettings, engine: Engine
) -> None:
    """PgBouncer in transaction mode: the lock is a row, released at the end and free after a crash."""
    behind_pgbouncer = isolated.model_copy(update={"pgbouncer_transaction_mode": True})
    with training_lock(engine, lease=True), pytest.raises(TrainingInProgress, match="lease"):
        run_training(behind_pgbouncer, use_ray=False, steps=1)
    with training_lock(engine, lease=True):  # released at the end of the block
        with engine.begin() as connection:  # as if its holder had crashed a minute ago
            connection.execute(update(Lease).values(expires_at=func.now() - timedelta(seconds=1)))
        with training_lock(engine, lease=True):
            pass
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Lease)) == 0


def test_schedule_trains_once_enough_new_labels_arrived(isolated: TacitSettings, engine: Engine) -> None:
    insert_clear_signal(engine)
    schedule = Schedule(min_new_labels=40)
    trained: list[int] = []

    def train() -> int:
        trained.append(run_training(isolated, use_ray=False, steps=2))
        return trained[-1]

    run_schedule(schedule, engine, train, poll_seconds=1, once=True)
    run_schedule(schedule, engine, train, poll_seconds=1, once=True)  # nothing new since that run

    assert len(trained) == 1 and champion(engine).id == trained[0]


def test_models_commands_list_show_promote_and_roll_back(
    isolated: TacitSettings, engine: Engine, tmp_path: Path
) -> None:
    first, second = versions(engine, 2, tmp_path)
    with engine.begin() as connection:
        connection.execute(update(ModelVersion).where(ModelVersion.id == first).values(
            metrics={"holdout_qwk": 0.61, "margin_curve_hh": [{"pairs": 3, "accuracy": 0.5}]}))
    runner = CliRunner()

    promoted = runner.invoke(cli.app, ["models", "promote", str(first), "--reason", "looks good"], obj=Wiring(isolated))
    rolled = runner.invoke(cli.app, ["models", "promote", str(second)], obj=Wiring(isolated))
    back = runner.invoke(cli.app, ["models", "rollback", "--reason", "v2 is off"], obj=Wiring(isolated))
    listed = runner.invoke(cli.app, ["models", "list"], obj=Wiring(isolated))
    shown = runner.invoke(cli.app, ["models", "show", str(first)], obj=Wiring(isolated))

    assert promoted.exit_code == rolled.exit_code == back.exit_code == 0, back.output
    assert f"version {first} is the champion again" in back.output
    assert "champion" in listed.output and "rejected" in listed.output and "0.610" in listed.output
    assert "holdout_qwk" in shown.output and "pairs 3" in shown.output
    assert "promoted: looks good" in shown.output and "promoted: v2 is off" in shown.output
