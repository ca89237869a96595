"""Following the champion without LISTEN (a SQLite registry): swap, and the checks that refuse a version."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from sqlalchemy.orm import Session

from tacit.core.db import Base, ModelStatus, ModelVersion, make_engine
from tacit.core.settings import TacitSettings
from tacit.model.scoring import RewardScorer, canary_rewards
from tacit.serving.metrics import ServiceMetrics
from tacit.serving.model import ServedModel
from tacit.serving.swap import CanaryError, ChampionFollower, ModelSlot, ModelSlots, check_canary
from tests.helpers.serving import SETTINGS, TACIT_SPEC, save_tiny_checkpoint


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("good"), 3, TACIT_SPEC)


def test_follows_a_promotion_and_refuses_an_incompatible_one(good: Path, tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'registry.db'}"})
    engine = make_engine(settings.database_url)
    Base.metadata.create_all(engine)
    incompatible = save_tiny_checkpoint(tmp_path / "incompatible", 3, {**TACIT_SPEC, "levels": [1, 2, 3, 4, 5]})
    slot = ModelSlot(ServedModel(RewardScorer.load(good, settings), 1))
    slots = ModelSlots(slot)
    metrics = ServiceMetrics()

    def promote(version: int, checkpoint: Path) -> None:
        with Session(engine) as session, session.begin():
            session.query(ModelVersion).delete()
            session.add(ModelVersion(id=version, base_model="tiny", artifact_uri=str(checkpoint),
                                     status=ModelStatus.CHAMPION.value, metrics={}))

    async def follow() -> None:
        with ThreadPoolExecutor(1) as loader:
            await ChampionFollower(settings, slots, metrics).follow(loader)

    promote(2, good)
    asyncio.run(follow())
    assert slot.current.version == 2

    promote(3, incompatible)
    asyncio.run(follow())
    assert slot.current.version == 2
    assert slot.last_rejected.version == 3
    assert "5 levels" in slot.last_rejected.reason
    engine.dispose()


def test_canary_accepts_recorded_rewards_and_refuses_others(good: Path) -> None:
    scorer = RewardScorer.load(good, SETTINGS)
    recorded = canary_rewards(scorer)

    check_canary(ServedModel(scorer, 1, {"canary_rewards": recorded}))
    with pytest.raises(CanaryError, match="differ from the recorded"):
        check_canary(ServedModel(scorer, 1, {"canary_rewards": [r + 0.5 for r in recorded]}))


def test_canary_refuses_a_model_that_answers_nan(good: Path) -> None:
    scorer = RewardScorer.load(good, SETTINGS)
    with torch.no_grad():
        scorer.model.classifier.bias.fill_(float("nan"))

    with pytest.raises(CanaryError, match="finite"):
        check_canary(ServedModel(scorer, 1))


def test_behind_pgbouncer_in_transaction_mode_the_follower_polls_instead_of_listening(tmp_path: Path) -> None:
    url = "postgresql+psycopg://tacit@pgbouncer:6432/tacit"
    settings = TacitSettings(data_dir=tmp_path, database_url=url)
    pooled = settings.model_copy(update={"pgbouncer_transaction_mode": True})
    assert ChampionFollower(settings, ModelSlots(ModelSlot(None)), None)._listen_url is not None
    assert ChampionFollower(pooled, ModelSlots(ModelSlot(None)), None)._listen_url is None


def test_follows_each_tenants_champion_into_its_own_slot(good: Path, tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'registry.db'}"})
    engine = make_engine(settings.database_url)
    Base.metadata.create_all(engine)
    slots = ModelSlots(ModelSlot(ServedModel(RewardScorer.load(good, settings), 1)))

    def champions(*scopes: tuple[int, str | None]) -> None:
        with Session(engine) as session, session.begin():
            session.query(ModelVersion).delete()
            session.add_all(ModelVersion(id=version, tenant=tenant, base_model="tiny", artifact_uri=str(good),
                                         status=ModelStatus.CHAMPION.value, metrics={}) for version, tenant in scopes)

    async def follow() -> None:
        with ThreadPoolExecutor(1) as loader:
            await ChampionFollower(settings, slots, ServiceMetrics()).follow(loader)

    champions((2, None), (3, "acme"))
    assert not slots.followed
    asyncio.run(follow())
    assert slots.followed
    assert (slots.slot("acme").current.version, slots.slot("acme").current.tenant) == (3, "acme")
    assert (slots.slot("globex").current.version, slots.slot(None).current.version) == (2, 2)

    champions((2, None), (4, "acme"))  # acme's own promotion: the global slot keeps its model object
    global_model = slots.default.current
    asyncio.run(follow())
    assert slots.slot("acme").current.version == 4 and slots.default.current is global_model

    champions((2, None))  # acme's champion demoted by hand, with no successor
    asyncio.run(follow())
    assert slots.slot("acme").current.version == 2 and "acme" not in slots.tenants
    engine.dispose()
