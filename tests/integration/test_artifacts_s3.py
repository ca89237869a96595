"""Model versions in object storage: trained and published by one process (or by Ray Train workers on nodes of
their own), loaded by another, through a real S3-compatible server (moto's standalone server) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tacit import cli
from tacit.core.artifacts import filesystem
from tacit.core.cli import Wiring
from tacit.core.db import ModelVersion, TrainingRun
from tacit.core.endpoints import authenticate_to_ray
from tacit.core.registry import get_version
from tacit.core.settings import TacitSettings
from tacit.trainer import job
from tacit.trainer.job import run_training
from tests.helpers.feedback import insert_feedback
from tests.helpers.s3 import CREDENTIALS, s3_server

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The endpoint of a fresh S3 server with a bucket ``tacit-models``, and its credentials in the environment."""
    pytest.importorskip("s3fs")
    with s3_server(tmp_path / "moto.log", "tacit-models") as url:
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        yield url


@pytest.fixture
def on_s3(s3: str, isolated: TacitSettings) -> TacitSettings:
    """``isolated`` with its model versions kept in the bucket."""
    return isolated.model_copy(update={"artifact_uri": "s3://tacit-models/versions", "artifact_endpoint_url": s3})


@pytest.fixture
def ray_with_credentials(isolated: TacitSettings) -> Iterator[None]:
    """This process joined to the embedded Ray, whose tasks and Ray Train workers get the S3 credentials as
    every node of a cluster has them (its environment or role)."""
    authenticate_to_ray(isolated)
    ray.init(address=isolated.ray_address, runtime_env={"env_vars": CREDENTIALS}, log_to_driver=True)
    yield
    ray.shutdown()


def scored_in_another_process(uri: str, endpoint_url: str, data_dir: Path) -> tuple[Path, float, str]:
    """(local copy, a reward, a line of the model card) of the version at ``uri``, as a process with its own
    data directory finds them."""
    script = ("import sys; from tacit.core.artifacts import local_copy; from tacit.core.settings import TacitSettings; "
              "from tacit.model.scoring import RewardScorer; s = TacitSettings(); "
              "d = local_copy(sys.argv[1], s); print(d); "
              "print(RewardScorer.load(d, s).score_texts(['User: hi\\nAssistant: hello']).rewards[0]); "
              "print((d / 'README.md').read_text().splitlines()[5])")
    env = {**os.environ, **CREDENTIALS, "TACIT_DATA_DIR": str(data_dir), "TACIT_ARTIFACT_ENDPOINT_URL": endpoint_url}
    out = subprocess.run([sys.executable, "-c", script, uri], check=False, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    local, reward, card_line = out.stdout.strip().splitlines()[-3:]
    return Path(local), float(reward), card_line


def test_a_version_trained_here_loads_in_another_process(on_s3: TacitSettings, engine: Engine,
                                                          tmp_path: Path) -> None:
    insert_feedback(engine)

    version = get_version(engine, run_training(on_s3, use_ray=False, steps=2))

    assert version.artifact_uri.startswith("s3://tacit-models/versions/run-")
    elsewhere = tmp_path / "another-node"  # a data directory with no model in it
    local, reward, card_line = scored_in_another_process(version.artifact_uri, on_s3.artifact_endpoint_url, elsewhere)
    assert local.is_relative_to(elsewhere) and 1.0 <= reward <= 5.0
    assert card_line  # the model card was published next to the weights


@pytest.fixture
def workers_on_their_own_nodes(on_s3: TacitSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray Train as on nodes of their own: what its workers wrote or downloaded locally (the run directory,
    the cached champion) is gone before the evaluation task and the driver go on."""
    train_on_workers = job.train_on_workers

    def then_gone(*args: Any, **kwargs: Any) -> Any:
        trained = train_on_workers(*args, **kwargs)
        shutil.rmtree(on_s3.models_dir)
        shutil.rmtree(on_s3.data_dir / "artifact-cache", ignore_errors=True)
        return trained

    monkeypatch.setattr(job, "train_on_workers", then_gone)


def test_ray_train_workers_on_nodes_of_their_own_publish_the_version(
    on_s3: TacitSettings, engine: Engine, tmp_path: Path, ray_with_credentials: None, workers_on_their_own_nodes: None
) -> None:
    insert_feedback(engine)

    result = CliRunner().invoke(cli.app, ["train", "--workers", "2", "--steps", "2"], obj=Wiring(on_s3))

    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        run = session.scalars(select(TrainingRun)).one()
        version = session.scalars(select(ModelVersion)).one()
    assert run.params["workers"] == 2 and version.training_run_id == run.id
    assert version.artifact_uri == f"s3://tacit-models/versions/run-{run.id}"
    assert version.metrics["steps"] == 2 and "holdout_qwk" in version.metrics
    assert not on_s3.models_dir.exists()  # nothing was read back from, or written to, the workers' run directory
    ray_train_state, path = filesystem(f"{on_s3.artifact_uri}/ray-train/run-{run.id}", on_s3)
    assert ray_train_state.exists(path)  # where Ray Train's controller and workers on any node reach it
    elsewhere = tmp_path / "another-node"
    local, reward, card_line = scored_in_another_process(version.artifact_uri, on_s3.artifact_endpoint_url, elsewhere)
    assert local.is_relative_to(elsewhere) and 1.0 <= reward <= 5.0
    assert card_line and f"version {version.id}" in (local / "README.md").read_text()


def test_ray_train_workers_continue_from_the_champion_by_its_uri(
    on_s3: TacitSettings, engine: Engine, ray_with_credentials: None, workers_on_their_own_nodes: None
) -> None:
    insert_feedback(engine)
    first = get_version(engine, run_training(on_s3, use_ray=False, steps=2))

    continued = get_version(engine, run_training(on_s3, workers=2, steps=1, incremental=True))

    assert continued.base_model == first.artifact_uri  # each worker and the evaluation task downloaded it
    assert continued.artifact_uri.startswith("s3://tacit-models/versions/run-")
    assert "holdout_qwk" in continued.metrics
