"""Hot swap against the real PostgreSQL registry: promotions under load never fail a request.

Promotions are made by the trainer's registry: one transaction that leaves exactly one champion and sends
``NOTIFY tacit_model_events``. The service polls only every ten minutes here, so a swap seen within the
test's wait was heard through LISTEN.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import ModelDecision, ModelStatus, ModelVersion, make_engine
from tacit.core.registry import promote
from tacit.core.settings import TacitSettings
from tacit.serving.server import start_in_background
from tests.helpers import wait_until
from tests.helpers.serving import CHAT, TACIT_SPEC, save_tiny_checkpoint

pytestmark = pytest.mark.integration
WAIT_S = 60.0


@pytest.fixture
def registry(embedded_stack, tmp_path: Path) -> Iterator[Engine]:
    """Leaves the registry as it found it, for the tests that train and promote after this one."""
    engine = make_engine(embedded_stack.database_url)
    with Session(engine) as session:
        before = dict(session.execute(select(ModelVersion.id, ModelVersion.status)).all())
    try:
        yield engine
    finally:
        with engine.begin() as connection:
            added = ModelVersion.id.not_in(before)
            mine = select(ModelVersion.id).where(added)
            connection.execute(delete(ModelDecision).where(ModelDecision.version_id.in_(mine)))
            connection.execute(delete(ModelVersion).where(added))
            for version, status in before.items():
                connection.execute(update(ModelVersion).where(ModelVersion.id == version).values(status=status))
        engine.dispose()


def register(engine: Engine, checkpoint: Path) -> int:
    with Session(engine) as session, session.begin():
        row = ModelVersion(base_model="tiny-bert", artifact_uri=str(checkpoint),
                           status=ModelStatus.CANDIDATE.value, metrics={})
        session.add(row)
        session.flush()
        return row.id


def checkpoints(directory: Path, count: int) -> list[Path]:
    first = save_tiny_checkpoint(directory / "v0", 3, TACIT_SPEC)
    return [first] + [Path(shutil.copytree(first, directory / f"v{i}")) for i in range(1, count)]


class LoadGenerator:
    """Threads that score without pause and keep every answer's status and model version."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answers: list[tuple[int, int | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._load) for _ in range(threads)]

    def _load(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v1/score", json={"items": [CHAT, {"text": "thanks!"}]})
                    self.answers.append((response.status_code, response.json().get("model_version")))
                except httpx.HTTPError:
                    self.answers.append((0, None))

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def wait_for(url: str, condition, what: str) -> dict:
    """The service's /v1/model once ``condition`` holds for it."""
    seen: list[dict] = []

    def holds() -> bool:
        seen.append(httpx.get(f"{url}/v1/model").json())
        return condition(seen[-1])

    wait_until(holds, what, timeout=WAIT_S, interval=0.1)
    return seen[-1]


def serving_settings(settings: TacitSettings) -> TacitSettings:
    return settings.model_copy(update={"serve_poll_s": 600.0, "precision": "float32"})


def test_five_promotions_under_load_fail_no_request(settings, registry: Engine, tmp_path: Path) -> None:
    versions = [register(registry, path) for path in checkpoints(tmp_path, 6)]
    promote(registry, versions[0], reason="serving test", settings=settings)

    with start_in_background(serving_settings(settings)) as server, LoadGenerator(server.url) as load:
        for version in versions[1:]:
            promote(registry, version, reason="serving test", settings=settings)
            info = wait_for(server.url, lambda info, v=version: info["model_version"] == v,
                            f"version {version} served")
            assert info["model_version"] == version

    statuses = {status for status, _ in load.answers}
    served = [version for _, version in load.answers]
    assert statuses == {200}
    assert set(served) == set(versions)
    assert served.index(versions[-1]) > served.index(versions[0])


def test_a_corrupt_promotion_is_rejected_and_the_champion_keeps_serving(
    settings, registry: Engine, tmp_path: Path
) -> None:
    good, corrupt = checkpoints(tmp_path, 2)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    champion, broken = register(registry, good), register(registry, corrupt)
    promote(registry, champion, reason="serving test", settings=settings)

    with start_in_background(serving_settings(settings)) as server, LoadGenerator(server.url) as load:
        promote(registry, broken, reason="serving test", settings=settings)
        info = wait_for(server.url, lambda info: info["last_rejected"] is not None, "the rejection")
        answered = len(load.answers)  # and requests go on being answered after the rejection
        wait_until(lambda: len(load.answers) >= answered + 8, "eight more answers after the rejection",
                   timeout=WAIT_S, interval=0.05)
        exposition = httpx.get(f"{server.url}/metrics").text

    assert info["model_version"] == champion
    assert info["last_rejected"]["version"] == broken
    assert "Safetensor" in info["last_rejected"]["reason"]
    assert {status for status, _ in load.answers} == {200}
    assert {version for _, version in load.answers} == {champion}
    assert 'tacit_model_swaps_total{outcome="rejected"} 1.0' in exposition
