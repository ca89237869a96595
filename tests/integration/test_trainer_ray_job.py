"""`tacit train --ray-job` against the embedded Ray's job server: the job trains and registers a version
under its submission id, and Ctrl-C stops it with its run marked failed."""

from __future__ import annotations

import pytest
from ray.job_submission import JobStatus
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tacit import cli
from tacit.core.cli import Wiring
from tacit.core.db import ModelStatus, ModelVersion, RunStatus, TrainingRun
from tacit.core.settings import TacitSettings
from tacit.trainer.submit import RayJobError, connect, submit_training
from tests.helpers.feedback import insert_feedback

pytestmark = pytest.mark.integration


def test_training_as_a_ray_job_registers_a_version_under_its_job_id(
    isolated: TacitSettings, engine: Engine
) -> None:
    insert_feedback(engine)

    result = CliRunner().invoke(cli.app, ["train", "--ray-job", "--steps", "2", "--layout", "wildreward"],
                                obj=Wiring(isolated))

    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        run = session.scalars(select(TrainingRun)).one()
        version = session.scalars(select(ModelVersion)).one()
    assert run.ray_job_id.startswith("tacit-train-")
    assert f"Running entrypoint for job {run.ray_job_id}" in result.output  # the job's log, streamed
    assert f"version {version.id}" in result.output
    assert connect(isolated).get_job_status(run.ray_job_id) == JobStatus.SUCCEEDED
    assert run.status == RunStatus.SUCCEEDED.value and version.training_run_id == run.id
    assert version.status == ModelStatus.CHAMPION.value
    # The options reached the job, and so did the settings (data dir, batch size). The job's driver trained
    # in a Ray task, as `tacit train` does by default, and kept the submission id on the run.
    assert run.params["use_ray"] is True and run.params["steps"] == 2 and run.params["layout"] == "wildreward"
    assert run.params["batch_size"] == isolated.train_batch_size
    assert version.artifact_uri == str(isolated.models_dir / f"run-{run.id}")


def test_ctrl_c_stops_the_job_and_fails_its_run(isolated: TacitSettings, engine: Engine) -> None:
    insert_feedback(engine)

    def interrupt_once_training(text: str) -> None:
        if "training:" in text:  # the progress bar: the run row exists, the fine-tune has begun
            raise KeyboardInterrupt

    with pytest.raises(RayJobError, match="stopped") as raised:
        submit_training(isolated, ["--local", "--steps", "1000"], echo=interrupt_once_training)

    with Session(engine) as session:
        run = session.scalars(select(TrainingRun)).one()
        assert session.scalars(select(ModelVersion)).all() == []
    assert run.status == RunStatus.FAILED.value and run.error.startswith(f"Ray job {run.ray_job_id} stopped")
    assert f"ray job logs {run.ray_job_id}" in str(raised.value)
    assert connect(isolated).get_job_status(run.ray_job_id) == JobStatus.STOPPED


def test_unreachable_job_server_is_an_actionable_error(settings: TacitSettings) -> None:
    with pytest.raises(RayJobError, match="(?s)No Ray job server at http://127.0.0.1:9: .*RAY_ADDRESS"):
        connect(settings.model_copy(update={"ray_address": "http://127.0.0.1:9"}))
