"""Tenant-scoped models end to end on the real stack: two tenants whose users want opposite things, a model
trained for one of them, and a scoring service that serves each API key its tenant's champion, else the
global one, and hot-swaps each scope without touching the other."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core import apikeys
from tacit.core.db import TrainingRun
from tacit.core.domain import Role
from tacit.core.registry import champion, decisions, get_version, promote, register_version
from tacit.core.settings import TacitSettings
from tacit.serving.server import start_in_background
from tacit.trainer.job import run_training
from tests.helpers import wait_until
from tests.helpers.feedback import message, rating

pytestmark = pytest.mark.integration

LONG = ("Read the file with open(), pass it to csv.reader, skip the header row, convert each field to the "
        "type you need, and collect the rows in a list that you can sort or filter afterwards.")
SHORT = "Use csv.reader."
PRAISES_LONG, PRAISES_SHORT = "acme", "globex"  # the two tenants' users disagree about long answers
WAIT_S = 60.0


def insert_opposite_tastes(engine: Engine, conversations: int = 48) -> None:
    """acme's users are satisfied by long answers and reject short ones; globex's users the reverse."""
    rows: list = []
    for tenant in (PRAISES_LONG, PRAISES_SHORT):
        for i in range(conversations):
            conversation, user, long = f"{tenant}-{i}", f"{tenant}-user-{i % 16}", i % 2 == 0
            level = 5 if long == (tenant == PRAISES_LONG) else 1
            rows += [
                message(conversation, 0, Role.USER, f"How do I read CSV file number {i}?", user, tenant=tenant),
                message(conversation, 1, Role.ASSISTANT, LONG if long else SHORT, user, tenant=tenant),
                rating(conversation, user, 1, level, tenant=tenant),
            ]
    with Session(engine) as session, session.begin():
        session.add_all(rows)


class Caller:
    """One tenant's client of the scoring service, with its own API key."""

    def __init__(self, url: str, engine: Engine, tenant: str) -> None:
        _, key = apikeys.create(engine, tenant)
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def model(self) -> dict:
        return self.client.get("/v1/model").raise_for_status().json()

    def rewards(self) -> list[float]:
        items = [{"query": "How do I read CSV file number 99?", "response": text} for text in (LONG, SHORT)]
        return self.client.post("/v1/score", json={"items": items}).raise_for_status().json()["rewards"]

    def wait_for_version(self, version: int) -> dict:
        wait_until(lambda: self.model()["model_version"] == version, f"version {version} served",
                   timeout=WAIT_S, interval=0.1)
        return self.model()


def test_each_tenant_is_served_its_own_champion_else_the_global_one(
    isolated: TacitSettings, engine: Engine
) -> None:
    insert_opposite_tastes(engine)
    settings = isolated.model_copy(update={"learning_rate": 2e-4, "gate_tolerance": 1.0})
    everyone = run_training(settings, use_ray=False, steps=4)
    serving = settings.model_copy(update={"require_api_keys": True, "serve_poll_s": 600.0,
                                          "precision": "float32"})  # promotions heard through LISTEN

    with start_in_background(serving) as server:
        wait_until(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "the service ready",
                   timeout=WAIT_S, interval=0.1)
        acme, globex = Caller(server.url, engine, PRAISES_LONG), Caller(server.url, engine, PRAISES_SHORT)
        assert acme.model()["tenant"] is None  # no model of its own yet: the global one
        own = run_training(settings, use_ray=False, steps=30, tenant=PRAISES_LONG)  # promoted while serving
        acme_model = acme.wait_for_version(own)
        globex_model, acme_rewards, globex_rewards = globex.model(), acme.rewards(), globex.rewards()

        global_copy = register_version(engine, run_id=None, base_model="copy", metrics={},
                                       artifact_uri=get_version(engine, everyone).artifact_uri)
        promote(engine, global_copy, reason="a new global champion", settings=settings)
        globex_after = globex.wait_for_version(global_copy)
        acme_after = acme.model()

    assert (acme_model["model_version"], acme_model["tenant"]) == (own, PRAISES_LONG)
    assert (globex_model["model_version"], globex_model["tenant"]) == (everyone, None)
    assert acme_rewards[0] > acme_rewards[1]  # acme's own model learned that its users want long answers
    assert acme_rewards != pytest.approx(globex_rewards, abs=1e-3)
    assert (globex_after["tenant"], acme_after["model_version"]) == (None, own)  # one scope's swap only
    assert champion(engine).id == global_copy and champion(engine, PRAISES_LONG).id == own
    gated = f"compared with the global champion, version {everyone}, on the same data"
    assert decisions(engine, own)[-1].reasons[0] == gated
    with Session(engine) as session:
        run = session.get(TrainingRun, get_version(engine, own).training_run_id)
        assert run.params["tenant"] == PRAISES_LONG
