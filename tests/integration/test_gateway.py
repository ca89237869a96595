"""API keys, the ingest gateway and the scoring service's key check, on the real Tansu and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from tacit.cli import app as cli
from tacit.core import apikeys
from tacit.core.apikeys import KeyVerifier
from tacit.core.db import make_engine
from tacit.core.kafka import ensure_topics
from tacit.core.settings import TacitSettings, get_settings
from tacit.ingest.gateway import SharedBatches, create_app
from tacit.serving.server import load_app
from tests.helpers.hostile import VALUES, bodies
from tests.helpers.serving import CHAT, TACIT_SPEC, save_tiny_checkpoint

pytestmark = pytest.mark.integration


def event(turn: int, **fields) -> dict:
    return {"conversation_id": "c1", "turn_index": turn, "role": "user", "content": f"message {turn}", **fields}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def engine(embedded_stack) -> Iterator[Engine]:
    engine = make_engine(embedded_stack.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def gateway_settings(settings: TacitSettings, embedded_stack) -> TacitSettings:
    """A topic of its own, so that no worker test ever reads these events."""
    gateway = settings.model_copy(update={"chat_events_topic": "gateway-test-events", "gateway_max_batch": 5,
                                          "gateway_max_body_bytes": 64 * 1024, "api_key_cache_s": 0})
    ensure_topics(embedded_stack.kafka_bootstrap, gateway)
    return gateway


@pytest.fixture(scope="module")
def gateway(gateway_settings: TacitSettings, engine: Engine, embedded_stack) -> Iterator[TestClient]:
    app = create_app(gateway_settings, KeyVerifier(engine, gateway_settings.api_key_cache_s),
                     embedded_stack.kafka_bootstrap)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def acme_key(engine: Engine) -> str:
    return apikeys.create(engine, "acme", "test")[1]


async def read_back(bootstrap: str, topic: str, placed: list[dict]) -> list[tuple[bytes, dict]]:
    """The records at the partitions and offsets that the gateway answered."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        records = []
        for result in placed:
            partition = TopicPartition(topic, result["partition"])
            consumer.assign([partition])
            consumer.seek(partition, result["offset"])
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
            records.append((record.key, json.loads(record.value)))
        return records
    finally:
        await consumer.stop()


def test_a_batch_is_on_the_topic_when_the_gateway_answers(gateway, gateway_settings, acme_key, embedded_stack):
    batch = [event(0), event(1, role="assistant", tenant="acme"), event(2)]
    response = gateway.post("/v1/events", json={"events": batch}, headers={"X-API-Key": acme_key})
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, "accepted"), (1, "accepted"), (2, "accepted")]
    records = asyncio.run(read_back(embedded_stack.kafka_bootstrap, gateway_settings.chat_events_topic, results))
    assert [key for key, _ in records] == [b"acme:c1"] * 3
    assert [(value["tenant"], value["turn_index"], value["role"]) for _, value in records] == [
        ("acme", 0, "user"), ("acme", 1, "assistant"), ("acme", 2, "user")
    ]
    single = gateway.post("/v1/events", json=event(3), headers=bearer(acme_key))
    assert single.status_code == 202 and single.json()["results"][0]["status"] == "accepted"
    assert 'tacit_gateway_events_total{outcome="accepted"} 4.0' in gateway.get("/metrics").text


def test_events_of_several_conversations_are_where_the_answer_says(gateway, gateway_settings, acme_key,
                                                                     embedded_stack):
    batch = [event(turn // 3, conversation_id=f"spread-{turn % 3}") for turn in range(5)]
    response = gateway.post("/v1/events", json=batch, headers=bearer(acme_key))
    assert response.status_code == 202, response.text
    records = asyncio.run(read_back(embedded_stack.kafka_bootstrap, gateway_settings.chat_events_topic,
                                    response.json()["results"]))
    assert [(key, value["turn_index"]) for key, value in records] == [
        (f"acme:{e['conversation_id']}".encode(), e["turn_index"]) for e in batch
    ]


def test_a_key_writes_its_own_tenant_only(gateway, acme_key):
    response = gateway.post("/v1/events", json=[event(0), event(1, tenant="globex")], headers=bearer(acme_key))
    assert response.status_code == 403
    assert response.json()["results"] == [
        {"index": 1, "status": "forbidden", "error": "tenant 'globex' is not the key's tenant 'acme'"}
    ]


def test_invalid_events_are_refused_each_with_its_reasons(gateway, acme_key):
    batch = [event(0), event(-1), {"turn_index": 2}, "text"]
    response = gateway.post("/v1/events", json=batch, headers=bearer(acme_key))
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "3 of 4 events refused (invalid events); none sent"
    reasons = {result["index"]: result["error"] for result in body["results"]}
    assert reasons.keys() == {1, 2, 3}
    assert "turn_index: Input should be greater than or equal to 0" in reasons[1]
    assert "conversation_id: Field required" in reasons[2] and "role: Field required" in reasons[2]
    assert reasons[3] == "an event must be a JSON object, not str"


def test_malformed_and_oversize_requests(gateway, gateway_settings, acme_key):
    headers = {**bearer(acme_key), "content-type": "application/json"}
    assert gateway.post("/v1/events", content=b"{not json", headers=headers).status_code == 400
    assert gateway.post("/v1/events", content=b'{"content": "\xff"}', headers=headers).status_code == 400
    too_many = gateway.post("/v1/events", json=[event(i) for i in range(6)], headers=headers)
    assert too_many.status_code == 413 and "at most 5" in too_many.json()["detail"]
    too_big = gateway.post("/v1/events", json=event(0, content="x" * 70_000), headers=headers)
    assert too_big.status_code == 413
    assert gateway.post("/v1/events", json={"events": {}}, headers=headers).status_code == 422


def test_keys_missing_invalid_or_revoked(gateway, engine):
    stored, key = apikeys.create(engine, "acme")
    assert gateway.post("/v1/events", json=event(0)).status_code == 401
    assert gateway.post("/v1/events", json=event(0), headers=bearer(apikeys.new_key())).status_code == 401
    assert gateway.post("/v1/events", json=event(0), headers=bearer(key)).status_code == 202
    apikeys.revoke(engine, stored.id)
    revoked = gateway.post("/v1/events", json=event(0), headers=bearer(key))
    assert revoked.status_code == 403 and f"API key {stored.id} was revoked" in revoked.json()["detail"]


class OneRecordBatch:
    """A record batch that holds one record, so that a request's events go out as several batches."""

    def __init__(self) -> None:
        self.records = 0

    def append(self, key: bytes, value: bytes, timestamp: None) -> SimpleNamespace | None:
        self.records += 1
        return SimpleNamespace(offset=0) if self.records == 1 else None


class BrokenProducer:
    """Kafka failing mid-batch: the first send is acknowledged, the second times out, then none can be sent."""

    def __init__(self) -> None:
        self.sent = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> OneRecordBatch:
        return OneRecordBatch()

    async def send_batch(self, batch: OneRecordBatch, topic: str, partition: int) -> asyncio.Future:
        self.sent += 1
        if self.sent > 2:
            raise KafkaConnectionError("broker down")
        delivery = asyncio.get_running_loop().create_future()
        if self.sent == 1:
            delivery.set_result(type("Metadata", (), {"partition": 0, "offset": 41})())
        else:
            delivery.set_exception(KafkaTimeoutError())
        return delivery


def test_kafka_failing_is_a_503_that_names_what_was_not_accepted(gateway, acme_key):
    real = gateway.app.state.batches
    gateway.app.state.batches = SharedBatches(BrokenProducer(), real.topic)
    try:
        response = gateway.post("/v1/events", json=[event(i) for i in range(4)], headers=bearer(acme_key))
    finally:
        gateway.app.state.batches = real
    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "Kafka accepted 1 of 4 events; send the others again"
    assert [(r["index"], r["status"]) for r in body["results"]] == [
        (0, "accepted"), (1, "failed"), (2, "failed"), (3, "failed")
    ]
    assert body["results"][0]["offset"] == 41
    assert "KafkaTimeoutError" in body["results"][1]["error"] and "broker down" in body["results"][3]["error"]


def test_the_docs_describe_the_request(gateway):
    schema = gateway.get("/openapi.json").json()
    assert "ChatEvent" in schema["components"]["schemas"]
    body = schema["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/ChatEvent"} in body["anyOf"]
    assert gateway.get("/docs").status_code == 200


def test_keys_cli_creates_lists_and_revokes(settings, engine, monkeypatch):
    monkeypatch.setenv("TACIT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        created = runner.invoke(cli, ["keys", "create", "--tenant", "initech", "--name", "cli test"])
        assert created.exit_code == 0, created.output
        key = created.stdout.strip().splitlines()[-1]
        identifier = apikeys.key_id(key)
        listed = runner.invoke(cli, ["keys", "list", "--tenant", "initech"])
        assert identifier in listed.stdout and "cli test" in listed.stdout and key not in listed.stdout
        assert runner.invoke(cli, ["keys", "revoke", identifier]).exit_code == 0
        assert apikeys.verify(engine, key) is None
    finally:
        get_settings.cache_clear()


def test_serving_requires_a_key_when_keys_are_required(settings, engine, tmp_path: Path):
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", 3, TACIT_SPEC)
    served = settings.model_copy(update={"require_api_keys": True, "api_key_cache_s": 0})
    stored, key = apikeys.create(engine, "acme")
    with TestClient(load_app(served, checkpoint=checkpoint)) as client:
        assert client.post("/v1/score", json={"items": [CHAT]}).status_code == 401
        assert client.post("/get_reward", json={"query": ["hi"]}).status_code == 401
        assert client.post("/v1/compare", json={"pairs": [{"a": CHAT, "b": CHAT}]}).status_code == 401
        assert client.get("/healthz").status_code == client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.post("/v1/score", json={"items": [CHAT]}, headers=bearer(key)).status_code == 200
        assert client.post("/get_reward", json={"query": ["hi"]}, headers={"X-API-Key": key}).status_code == 200
        apikeys.revoke(engine, stored.id)
        assert client.post("/get_reward", json={"query": ["hi"]}, headers=bearer(key)).status_code == 403


def test_feedback_signals_go_on_the_topic_under_the_conversations_key(gateway, gateway_settings, acme_key,
                                                                       embedded_stack):
    signals = [{"conversation_id": "c1", "message_turn": 1, "signal": "thumbs", "up": False, "comment": "wrong"},
               {"conversation_id": "c1", "message_turn": 1, "signal": "rating", "score": 9, "scale": 10}]
    response = gateway.post("/v1/feedback", json={"signals": signals}, headers=bearer(acme_key))
    assert response.status_code == 202, response.text
    assert response.json()["detail"] == "2 signals accepted"
    records = asyncio.run(read_back(embedded_stack.kafka_bootstrap, gateway_settings.chat_events_topic,
                                    response.json()["results"]))
    assert [key for key, _ in records] == [b"acme:c1"] * 2
    assert [(value["tenant"], value["signal"]) for _, value in records] == [("acme", "thumbs"), ("acme", "rating")]


def test_feedback_shares_the_events_keys_limits_and_error_shapes(gateway, acme_key):
    copy = {"conversation_id": "c1", "message_turn": 1, "signal": "copy"}
    assert gateway.post("/v1/feedback", json=copy).status_code == 401
    assert gateway.post("/v1/feedback", json=[copy, {**copy, "tenant": "globex"}],
                        headers=bearer(acme_key)).status_code == 403
    invalid = gateway.post("/v1/feedback", json=[copy, {**copy, "signal": "rating", "score": 7, "scale": 5}, 3],
                           headers=bearer(acme_key))
    assert invalid.status_code == 422
    assert invalid.json()["detail"] == "2 of 3 signals refused (invalid signals); none sent"
    reasons = {result["index"]: result["error"] for result in invalid.json()["results"]}
    assert "over its scale of 5" in reasons[1] and reasons[2] == "a signal must be a JSON object, not int"
    too_many = gateway.post("/v1/feedback", json=[copy] * 6, headers=bearer(acme_key))
    assert too_many.status_code == 413 and too_many.json()["detail"].startswith("6 signals in one request")
    schema = gateway.get("/openapi.json").json()
    assert "Thumbs" in schema["components"]["schemas"] and "/v1/feedback" in schema["paths"]


EVENT_FIELDS = {"conversation_id": st.text(max_size=8), "turn_index": st.integers(-5, 5),
                "role": st.sampled_from(["user", "assistant", "system"]), "content": st.text(max_size=8),
                "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "yesterday"]),
                "tenant": st.sampled_from(["acme", "globex", ""]), "metadata": VALUES}
SIGNAL_FIELDS = {**EVENT_FIELDS, "signal": st.sampled_from(["thumbs", "rating", "regenerate", "nope"]),
                 "message_turn": st.integers(-1, 3), "up": VALUES, "score": VALUES, "scale": VALUES}


@pytest.mark.parametrize(("path", "fields"), [("/v1/events", EVENT_FIELDS), ("/v1/feedback", SIGNAL_FIELDS)])
def test_hostile_bodies_get_an_answer_with_a_reason_never_a_server_error(gateway, acme_key, path, fields):
    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies(fields) | bodies(fields).map(lambda one: b'{"events": [' + one + b"]}"))
    def check(body: bytes) -> None:
        answer = gateway.post(path, content=body, headers={**bearer(acme_key), "content-type": "application/json"})
        assert answer.status_code < 500, (body[:200], answer.text[:300])
        assert answer.status_code == 202 or answer.json()["detail"]

    check()


def test_a_flood_from_one_key_is_throttled_and_what_was_accepted_is_on_the_topic(
    gateway_settings, engine, acme_key, embedded_stack
):
    """Two hundred requests at once from one key: the ones over its rate get 429 and send nothing, none
    gets a 5xx, and each accepted event is on the topic once."""
    from concurrent.futures import ThreadPoolExecutor

    throttled = gateway_settings.model_copy(update={"api_rate_per_second": 20.0, "api_rate_burst": 10})
    app = create_app(throttled, KeyVerifier(engine, 60), embedded_stack.kafka_bootstrap)
    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda turn: client.post("/v1/events", json=event(turn, conversation_id="flood"),
                                     headers=bearer(acme_key)), range(200)))
    codes = [answer.status_code for answer in answers]
    assert set(codes) == {202, 429} and codes.count(202) >= 10
    assert all(answer.headers["Retry-After"] for answer in answers if answer.status_code == 429)
    placed = [answer.json()["results"][0] for answer in answers if answer.status_code == 202]
    records = asyncio.run(read_back(embedded_stack.kafka_bootstrap, gateway_settings.chat_events_topic, placed))
    turns = [value["turn_index"] for _, value in records]
    assert sorted(turns) == sorted(turn for turn, code in enumerate(codes) if code == 202)
