"""Champions per scope on a SQLite registry: a tenant's promotion or rollback leaves the other scopes alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tacit.core import registry
from tacit.core.db import Base, ModelStatus, ModelVersion, make_engine
from tacit.core.settings import TacitSettings

SETTINGS = TacitSettings()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def announced(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The events the registry would have put on Kafka (no broker in unit tests)."""
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(registry, "_publish", lambda settings, event: events.append(event))
    return events


def new_version(engine: Engine, tenant: str | None) -> int:
    return registry.register_version(engine, run_id=None, base_model="tiny", artifact_uri=f"/models/{tenant}",
                                     metrics={}, tenant=tenant)


def promote(engine: Engine, version: int) -> dict[str, Any]:
    return registry.promote(engine, version, reason="test", settings=SETTINGS)


def status(engine: Engine, version: int) -> str:
    return registry.get_version(engine, version).status


def test_a_tenant_promotion_retires_only_that_tenants_champion(engine: Engine, announced: list) -> None:
    everyone, acme, globex = (new_version(engine, tenant) for tenant in (None, "acme", "globex"))
    for version in (everyone, acme, globex):
        promote(engine, version)
    acme_2 = new_version(engine, "acme")

    event = promote(engine, acme_2)

    assert event == {"event": "promoted", "version": acme_2, "artifact_uri": "/models/acme", "tenant": "acme"}
    assert announced[-1] == event
    assert status(engine, acme) == ModelStatus.RETIRED.value
    assert registry.champion(engine).id == everyone
    assert registry.champion(engine, "acme").id == acme_2
    assert registry.champion(engine, "globex").id == globex
    assert registry.champion(engine, "initech") is None  # no fallback here: the caller decides
    assert [row.id for row in registry.champions(engine)] == [everyone, globex, acme_2]


def test_a_global_promotion_leaves_tenant_champions(engine: Engine, announced: list) -> None:
    acme = new_version(engine, "acme")
    promote(engine, acme)
    first, second = new_version(engine, None), new_version(engine, None)
    promote(engine, first)
    promote(engine, second)

    assert status(engine, first) == ModelStatus.RETIRED.value
    assert registry.champion(engine, "acme").id == acme
    assert announced[-1]["tenant"] is None


def test_rollback_stays_within_the_scope(engine: Engine, announced: list) -> None:
    everyone, acme, acme_2 = new_version(engine, None), new_version(engine, "acme"), new_version(engine, "acme")
    for version in (everyone, acme, acme_2):
        promote(engine, version)

    event = registry.rollback(engine, reason="acme's v2 misbehaves", settings=SETTINGS, tenant="acme")

    assert (event["version"], event["tenant"]) == (acme, "acme")
    assert status(engine, acme_2) == ModelStatus.REJECTED.value
    assert registry.champion(engine).id == everyone
    with pytest.raises(registry.RegistryError, match="of the global model"):
        registry.rollback(engine, reason="nothing earlier", settings=SETTINGS)


def test_the_database_refuses_two_champions_in_one_scope(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add_all([ModelVersion(base_model="tiny", artifact_uri="a", tenant="acme", status="champion"),
                         ModelVersion(base_model="tiny", artifact_uri="b", tenant=None, status="champion")])
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        session.add(ModelVersion(base_model="tiny", artifact_uri="c", tenant="acme", status="champion"))
