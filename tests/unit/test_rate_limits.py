"""API keys on the scoring service: per-key rate limits (a token bucket on an injected clock, and the 429 a
client gets over it), and what needs a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine

from tacit.core import apikeys
from tacit.core.api_auth import KeyRateLimiter
from tacit.core.db import ApiKey
from tacit.core.settings import TacitSettings
from tests.helpers.serving import tiny_scoring_app


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_key_has_its_own_bucket_that_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = KeyRateLimiter(rate=2.0, burst=3, registry=CollectorRegistry(), clock=clock)

    assert [limiter.wait("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert limiter.wait("a") == pytest.approx(0.5)  # one token takes half a second at 2/s
    assert limiter.wait("b") == 0.0  # another key is not held back by the first
    clock.now = 0.5
    assert limiter.wait("a") == 0.0
    assert limiter.refused._value.get() == 1


def test_a_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    ApiKey.__table__.create(engine)
    _, key = apikeys.create(engine, "acme")
    settings = TacitSettings(api_rate_per_second=0.01, api_rate_burst=2, precision="float32")
    app = tiny_scoring_app(tmp_path, settings, keys=apikeys.KeyVerifier(engine, ttl_s=60))

    with TestClient(app) as client:
        answers = [client.post("/get_reward", json={"query": ["hi"]}, headers={"X-API-Key": key})
                   for _ in range(3)]
        model_info, health = client.get("/v1/model"), client.get("/healthz")

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert model_info.status_code == 401  # which model is served is for the service's clients only
    assert health.status_code == 200  # probes carry no key
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert "requests/s" in answers[2].json()["detail"]
    engine.dispose()


def test_a_key_that_cannot_be_checked_gets_503_not_500(tmp_path: Path) -> None:
    """The key store down (PostgreSQL restarting) is the service's fault and temporary: retry later."""
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}")  # no api_keys table: every lookup fails
    settings = TacitSettings(precision="float32")
    app = tiny_scoring_app(tmp_path, settings, keys=apikeys.KeyVerifier(engine, ttl_s=60))

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/get_reward", json={"query": ["hi"]}, headers={"X-API-Key": apikeys.new_key()})

    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "database" in answer.json()["detail"]


def test_a_read_only_token_cannot_score(tmp_path: Path) -> None:
    """Dashboard tokens are for people who look; scoring spends compute and needs a full key."""
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    ApiKey.__table__.create(engine)
    _, token = apikeys.create(engine, "acme", read_only=True)
    settings = TacitSettings(precision="float32")
    app = tiny_scoring_app(tmp_path, settings, keys=apikeys.KeyVerifier(engine, ttl_s=60))

    with TestClient(app) as client:
        answer = client.post("/get_reward", json={"query": ["hi"]}, headers={"X-API-Key": token})

    assert answer.status_code == 403 and "read-only" in answer.json()["detail"]


def test_a_key_store_that_does_not_answer_gets_503_within_the_timeout(tmp_path: Path, monkeypatch) -> None:
    """A frozen PostgreSQL: the lookup's query would wait forever; the request must not."""
    import threading

    thawed = threading.Event()
    monkeypatch.setattr(apikeys, "_fetch", lambda engine, identifier: thawed.wait())
    monkeypatch.setattr(apikeys, "LOOKUP_TIMEOUT_S", 0.2)
    settings = TacitSettings(precision="float32")
    keys = apikeys.KeyVerifier(create_engine("sqlite://"), ttl_s=60)
    try:
        with TestClient(tiny_scoring_app(tmp_path, settings, keys=keys)) as client:
            answer = client.post("/get_reward", json={"query": ["hi"]}, headers={"X-API-Key": apikeys.new_key()})
    finally:
        thawed.set()
    assert answer.status_code == 503 and "database" in answer.json()["detail"]
