"""The walking skeleton on real components: replay -> worker -> Postgres -> train on Ray -> serve -> score."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select

from tacit.core.db import FeedbackRow, MessageRow, ModelStatus, ModelVersion, RejectedEvent, make_engine
from tacit.core.domain import ChatEvent
from tacit.core.settings import TacitSettings
from tacit.devstack.processes import tacit_child
from tacit.ingest.events import encode_event
from tacit.ingest.replay import replay
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

PRAISE = "Thank you so much, that solved it!"
CORRECTION = "That's wrong, you forgot the second step."
SENTINEL_TENANT = "t"


def write_conversations(path: Path, count: int) -> Path:
    """Two follow-ups per conversation, one praising and one correcting, so both ends of the scale exist;
    replies long enough to pass the filters, so that the refined stage that training reads holds them."""
    with open(path, "w") as out:
        for i in range(count):
            messages = [
                {"role": "user", "content": f"How do I bake bread number {i}?"},
                {"role": "assistant", "content": "Mix flour, water, salt and yeast, knead the dough, let it "
                                                 "proof for an hour, then bake it."},
                {"role": "user", "content": PRAISE if i % 2 else CORRECTION},
                {"role": "assistant", "content": "Glad to help. Is there anything else about baking you would "
                                                 "like to know?"},
                {"role": "user", "content": CORRECTION if i % 2 else PRAISE},
            ]
            out.write(json.dumps({"conversation_id": f"bread-{i}", "user_id": f"user-{i}",
                                  "messages": messages}) + "\n")
        out.write("this line is not JSON\n")
    return path


async def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def send_sentinels(bootstrap: str, settings: TacitSettings) -> None:
    """One last event on every partition: once all are stored, everything sent before them was processed."""
    for partition in range(settings.partitions):
        event = ChatEvent(tenant=SENTINEL_TENANT, conversation_id=f"sentinel-{partition}", turn_index=0,
                          role="user", content="end")
        key, value = encode_event(event)
        asyncio.run(produce_raw(bootstrap, settings.chat_events_topic, key, value, partition))


async def read_dead_letters(bootstrap: str, topic: str) -> list[tuple[bytes, dict]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [(r.value, dict(r.headers)) for records in batches.values() for r in records]
    finally:
        await consumer.stop()


def count(engine, table, tenants: tuple[str, ...] = ()) -> int:
    """Rows of ``table`` (of ``tenants`` only, when given: other modules share the session database)."""
    query = select(func.count()).select_from(table)
    if tenants:
        query = query.where(table.tenant.in_(tenants))
    with engine.connect() as conn:
        return conn.scalar(query)


def test_thin_path(embedded_stack, settings: TacitSettings, tmp_path: Path):
    engine = make_engine(embedded_stack.database_url)
    logs = write_conversations(tmp_path / "logs.jsonl", 40)
    report = replay(logs, settings, embedded_stack.kafka_bootstrap)
    assert (report.conversations, report.events) == (40, 200)
    assert report.skipped == {"not JSON": 1}
    asyncio.run(produce_raw(embedded_stack.kafka_bootstrap, settings.chat_events_topic, b"k", b"{broken"))
    replay(logs, settings, embedded_stack.kafka_bootstrap)  # delivered twice: must change nothing
    send_sentinels(embedded_stack.kafka_bootstrap, settings)

    log = settings.data_dir / "logs" / "worker-test.log"
    ours = (settings.default_tenant, SENTINEL_TENANT)
    with tacit_child(settings, "worker", log=log) as worker:
        wait_until(lambda: count(engine, MessageRow, ours) == 200 + settings.partitions, "every sentinel stored",
                   log)
        assert worker.poll() is None, "the worker must survive bad records"
    assert count(engine, RejectedEvent) == 1

    with engine.connect() as conn:
        levels = conn.execute(select(FeedbackRow.followup_turn, FeedbackRow.level, FeedbackRow.labeler_id)
                              .where(FeedbackRow.conversation_id == "bread-1", FeedbackRow.stage == "raw")
                              .order_by(FeedbackRow.followup_turn)).all()
        rejected = conn.execute(select(RejectedEvent.payload, RejectedEvent.reason)).one()
    # two follow-ups in each conversation, each stored once raw and once refined (or filtered)
    assert count(engine, FeedbackRow, ours) == 160
    assert [(turn, level) for turn, level, _ in levels] == [(2, 5), (4, 2)]
    assert {labeler for *_, labeler in levels} == {"rules"}
    assert rejected.payload == b"{broken" and "not JSON" in rejected.reason
    dead = asyncio.run(read_dead_letters(embedded_stack.kafka_bootstrap, settings.dead_letter_topic))
    assert [(value, b"not JSON" in headers["reason"]) for value, headers in dead] == [(b"{broken", True)]

    from tacit.trainer.job import run_training

    version_id = run_training(settings, use_ray=True)
    with engine.connect() as conn:
        version = conn.execute(select(ModelVersion).where(ModelVersion.id == version_id)).one()
    assert version.status == ModelStatus.CHAMPION.value
    assert Path(version.artifact_uri, "config.json").exists()

    from tacit.serving.server import start_in_background

    with start_in_background(settings) as server:
        item = {"history": [], "query": "How do I bake bread?", "response": "Mix, knead, proof, bake."}
        scored = httpx.post(f"{server.url}/v1/score", json={"items": [item]}, timeout=60).json()
        rewards = httpx.post(f"{server.url}/get_reward", json={"query": ["User: hi\nAssistant: hello"]},
                             timeout=60).json()["rewards"]
    assert scored["model_version"] == version_id
    (reward,) = scored["rewards"]
    assert 1.0 <= reward <= len(scored["levels"])
    assert len(rewards) == 1 and 1.0 <= rewards[0] <= len(scored["levels"])
