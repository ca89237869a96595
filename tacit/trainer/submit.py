"""``tacit train --ray-job``: a training run submitted as a Ray Job to the cluster at ``RAY_ADDRESS``.

The job runs the same ``python -m tacit train`` with the user's options on the cluster, so it trains,
evaluates, registers and gates exactly as a run started there would. Its runtime env carries this
checkout's packages (``py_modules``: the cluster runs the client's code, not whatever it has installed)
and the client's settings as ``TACIT_*`` variables. The client follows the job's logs until it ends; on
Ctrl-C it stops the job. A driver that was stopped or killed cannot mark its run failed, so the client does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import to_jsonable_python
from ray.job_submission import JobStatus, JobSubmissionClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import ModelVersion, RunStatus, TrainingRun, make_engine
from tacit.core.endpoints import authenticate_to_ray, endpoint
from tacit.core.errors import TacitError
from tacit.core.registry import finish_run
from tacit.core.settings import TacitSettings

AGENT_WAIT_S = 120.0


class RayJobError(TacitError):
    """The training job could not be submitted, or it failed or was stopped."""


def submit_training(settings: TacitSettings, arguments: Sequence[str], echo: Callable[[str], None]) -> int:
    """Run ``tacit train ARGUMENTS`` as a Ray Job, echoing its logs as they come; returns the version id
    the job registered."""
    client = connect(settings)
    job_id = f"tacit-train-{uuid.uuid4().hex[:12]}"
    _submit_when_ready(
        client,
        entrypoint=shlex.join(["python", "-m", "tacit", "train", *arguments, "--ray-job-id", job_id]),
        submission_id=job_id,
        runtime_env={"py_modules": _package_dirs(), "excludes": ["__pycache__"],
                     "env_vars": settings_environment(settings)},
    )
    echo(f"Submitted Ray job {job_id}\n")
    status = _follow(client, job_id, echo)
    engine = make_engine(endpoint(settings, "postgres"))
    try:
        return _outcome(engine, client, job_id, status)
    finally:
        engine.dispose()


def connect(settings: TacitSettings) -> JobSubmissionClient:
    """A client of the job server: ``RAY_ADDRESS`` may be the dashboard URL or the cluster address (the
    dashboard URL is then read from the cluster)."""
    address = endpoint(settings, "ray")
    authenticate_to_ray(settings)
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, ValueError) as exc:
        raise RayJobError(
            f"No Ray job server at {address}: {exc}\nPoint RAY_ADDRESS at the dashboard of a running cluster "
            "(http://head:8265; the head must run with its dashboard), or use the embedded one (`tacit stack up`)."
        ) from None


def _submit_when_ready(client: JobSubmissionClient, **job: Any) -> None:
    """Submit, waiting for the head's job agent: a head that has just started (the embedded one, a cluster
    being scaled up) answers "No available agent" for a while before it takes jobs."""
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client.submit_job(**job)
            return
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise RayJobError(f"Ray did not take the job: {exc}") from None
            time.sleep(2.0)


def _package_dirs() -> list[str]:
    """The one import package of the distribution: whatever `tacit train` imports now or later is shipped."""
    return [str(Path(importlib.util.find_spec("tacit").origin).parent)]


def settings_environment(settings: TacitSettings) -> dict[str, str]:
    """``TACIT_*`` variables that rebuild ``settings`` in the job: every field set explicitly, the data
    directory, and the database and Kafka endpoints themselves (the job reads no stack state file).

    The Ray address is left out (Ray gives a job's driver its own cluster), and so are secret settings:
    anyone who can see the dashboard can read a runtime env. The database URL is the exception the driver
    cannot do without; it may hold a password, which is as exposed as the dashboard is (the embedded Ray's
    wants its token).
    """
    values = {name: getattr(settings, name) for name in settings.model_fields_set - {"ray_address"}}
    values |= {"data_dir": settings.data_dir, "database_url": endpoint(settings, "postgres"),
               "kafka_bootstrap": endpoint(settings, "kafka")}
    return {f"TACIT_{name.upper()}": _environment_value(value) for name, value in values.items()
            if value is not None and not isinstance(value, SecretStr)}


def _environment_value(value: Any) -> str:
    """pydantic-settings reads collections from an environment variable as JSON, everything else as is."""
    plain = to_jsonable_python(value)
    return json.dumps(plain) if isinstance(plain, (list, dict)) else str(plain)


def _follow(client: JobSubmissionClient, job_id: str, echo: Callable[[str], None]) -> JobStatus:
    """Echo the job's logs until it ends and return its final status; Ctrl-C stops the job."""
    try:
        asyncio.run(_echo_logs(client, job_id, echo))
    except KeyboardInterrupt:
        echo(f"\nStopping Ray job {job_id}\n")
        client.stop_job(job_id)
    while not (status := client.get_job_status(job_id)).is_terminal():
        time.sleep(0.5)
    return status


async def _echo_logs(client: JobSubmissionClient, job_id: str, echo: Callable[[str], None]) -> None:
    async for lines in client.tail_job_logs(job_id):
        echo(lines)


def _outcome(engine: Engine, client: JobSubmissionClient, job_id: str, status: JobStatus) -> int:
    """The version the job registered; a job that did not succeed is raised, its run marked failed if its
    driver could not do that itself."""
    with Session(engine) as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.ray_job_id == job_id))
        version = session.scalar(select(ModelVersion.id).join(TrainingRun).where(TrainingRun.ray_job_id == job_id))
    if status == JobStatus.SUCCEEDED and version is not None:
        return version
    message = f"Ray job {job_id} {status.value.lower()}: {client.get_job_info(job_id).message}"
    if run is not None and run.status == RunStatus.RUNNING.value:
        finish_run(engine, run.id, status=RunStatus.FAILED, error=message)
    raise RayJobError(f"{message}\nIts logs: `ray job logs {job_id}`, with RAY_ADDRESS set to this cluster.")
