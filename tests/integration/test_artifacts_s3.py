"""Model versions in object storage: trained and published by one process, loaded by another, through a real
S3-compatible server (moto's standalone server) on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from tacit.core.registry import get_version
from tacit.core.settings import TacitSettings
from tacit.devstack.stack import free_port
from tacit.trainer.job import run_training
from tests.helpers import wait_until
from tests.helpers.feedback import insert_feedback

pytestmark = pytest.mark.integration
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code < 500
    except httpx.TransportError:
        return False


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The endpoint of a fresh moto S3 server with a bucket ``tacit-models``; stopped by its PID afterwards."""
    s3fs = pytest.importorskip("s3fs")
    port = free_port()
    log = tmp_path / "moto.log"
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(url), "the S3 server", log)
        for name, value in AWS.items():
            monkeypatch.setenv(name, value)
        s3fs.S3FileSystem(client_kwargs={"endpoint_url": url}).mkdir("tacit-models")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_version_trained_here_loads_in_another_process(s3: str, isolated: TacitSettings, engine: Engine,
                                                          tmp_path: Path) -> None:
    settings = isolated.model_copy(update={"artifact_uri": "s3://tacit-models/versions",
                                           "artifact_endpoint_url": s3})
    insert_feedback(engine)

    version = get_version(engine, run_training(settings, use_ray=False, steps=2))

    assert version.artifact_uri.startswith("s3://tacit-models/versions/run-")
    elsewhere = tmp_path / "another-node"  # a data directory with no model in it
    script = ("import sys; from tacit.core.artifacts import local_copy; from tacit.core.settings import TacitSettings; "
              "from tacit.model.scoring import RewardScorer; s = TacitSettings(); "
              "d = local_copy(sys.argv[1], s); print(d); "
              "print(RewardScorer.load(d, s).score_texts(['User: hi\\nAssistant: hello']).rewards[0]); "
              "print((d / 'README.md').read_text().splitlines()[5])")
    env = {**os.environ, **AWS, "TACIT_DATA_DIR": str(elsewhere), "TACIT_ARTIFACT_ENDPOINT_URL": s3}
    out = subprocess.run([sys.executable, "-c", script, version.artifact_uri], check=False, env=env, capture_output=True,
                         text=True, timeout=300)

    assert out.returncode == 0, out.stderr[-2000:]
    local, reward, card_line = out.stdout.strip().splitlines()[-3:]
    assert Path(local).is_relative_to(elsewhere) and 1.0 <= float(reward) <= 5.0
    assert card_line  # the model card was published next to the weights
