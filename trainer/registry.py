"""Training runs and model versions in Postgres: what was trained, how it went, which version serves.

A version is an artifact directory plus its metrics; its ``status`` says whether the scoring service
should load it (``champion``). Until promotion gates exist, the first version ever becomes champion so a
fresh install serves something, and every later one waits as a ``candidate``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.db import ModelStatus, ModelVersion, RunStatus, TrainingRun


def start_run(engine: Engine, params: dict[str, Any]) -> int:
    with Session(engine) as session, session.begin():
        run = TrainingRun(status=RunStatus.RUNNING.value, params=params)
        session.add(run)
        session.flush()
        return run.id


def record_ray_job(engine: Engine, run_id: int, ray_job_id: str) -> None:
    _update_run(engine, run_id, ray_job_id=ray_job_id)


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    status: RunStatus,
    error: str | None = None,
    num_examples: int | None = None,
) -> None:
    _update_run(
        engine, run_id, status=status.value, error=error, num_examples=num_examples, finished_at=func.now()
    )


def _update_run(engine: Engine, run_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(**values))


def register_version(
    engine: Engine, *, run_id: int, base_model: str, artifact_uri: str, metrics: dict[str, Any]
) -> int:
    with Session(engine) as session, session.begin():
        first = session.scalar(select(ModelVersion.id).limit(1)) is None
        version = ModelVersion(
            training_run_id=run_id,
            base_model=base_model,
            artifact_uri=artifact_uri,
            status=(ModelStatus.CHAMPION if first else ModelStatus.CANDIDATE).value,
            metrics=metrics,
        )
        session.add(version)
        session.flush()
        return version.id


def champion(engine: Engine) -> ModelVersion | None:
    """The version the scoring service should serve, if any was trained."""
    statement = (
        select(ModelVersion)
        .where(ModelVersion.status == ModelStatus.CHAMPION.value)
        .order_by(ModelVersion.id.desc())
        .limit(1)
    )
    with Session(engine) as session:
        return session.scalar(statement)


def get_version(engine: Engine, version_id: int) -> ModelVersion | None:
    with Session(engine) as session:
        return session.get(ModelVersion, version_id)
