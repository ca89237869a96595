"""`tacit replay` through the real broker: every event arrives keyed by conversation, in turn order per
conversation, and a second replay of the same file repeats exactly the same events (idempotent downstream)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from tacit import cli
from tacit.core.cli import Wiring
from tacit.core.domain import ChatEvent
from tacit.core.kafka import end_offsets, ensure_topics
from tacit.core.settings import TacitSettings
from tacit.ingest.events import parse_event

pytestmark = pytest.mark.integration


def write_sharegpt(path: Path, conversations: int) -> Path:
    with open(path, "w") as out:
        for i in range(conversations):
            turns = [{"from": "human", "value": f"question {i}"}, {"from": "gpt", "value": f"answer {i}"},
                     {"from": "human", "value": "thanks!"}]
            out.write(json.dumps({"id": f"conv-{i}", "conversations": turns}) + "\n")
        out.write(json.dumps({"id": "broken", "conversations": [{"from": "robot", "value": "?"}]}) + "\n")
    return path


async def consume_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes, ChatEvent]]:
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await end_offsets(bootstrap, tps)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(tps)
        received = []
        async with asyncio.timeout(60):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received += [(r.key, parse_event(r.value, r.key)) for r in records]
        return received
    finally:
        await consumer.stop()


def test_replay_command_sends_each_conversation_in_order_and_repeats_identically(
    embedded_stack, settings: TacitSettings, tmp_path: Path
) -> None:
    private = settings.model_copy(update={"kafka_bootstrap": embedded_stack.kafka_bootstrap,
                                          "chat_events_topic": f"replay-{uuid.uuid4().hex[:8]}"})
    ensure_topics(embedded_stack.kafka_bootstrap, private)  # never the shared topic other tests' workers read
    logs = write_sharegpt(tmp_path / "chats.jsonl", 20)

    first = CliRunner().invoke(cli.app, ["replay", str(logs), "--tenant", "acme", "--rate", "1000"],
                               obj=Wiring(private))
    second = CliRunner().invoke(cli.app, ["replay", str(logs), "--format", "sharegpt", "--tenant", "acme"],
                                obj=Wiring(private))

    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert "events sent" in first.output and "60" in first.output and "skipped: unknown role" in first.output
    received = asyncio.run(consume_all(embedded_stack.kafka_bootstrap, private.chat_events_topic,
                                       private.partitions))
    assert len(received) == 120 and all(isinstance(event, ChatEvent) for _, event in received)
    by_conversation: dict[bytes, list[ChatEvent]] = defaultdict(list)
    for key, event in received:
        by_conversation[key].append(event)
    assert len(by_conversation) == 20
    for events in by_conversation.values():
        assert [e.turn_index for e in events] == [0, 1, 2, 0, 1, 2]  # in order, on one partition
        assert [e.event_id for e in events[:3]] == [e.event_id for e in events[3:]]
        assert events[0].tenant == "acme" and events[0].conversation_id.startswith("sharegpt-conv-")


def test_replaying_openassistant_sends_each_conversations_thumbs_after_its_messages(
    embedded_stack, settings: TacitSettings, tmp_path: Path
) -> None:
    private = settings.model_copy(update={"kafka_bootstrap": embedded_stack.kafka_bootstrap,
                                          "chat_events_topic": f"replay-{uuid.uuid4().hex[:8]}"})
    ensure_topics(embedded_stack.kafka_bootstrap, private)
    reply = {"message_id": "m2", "role": "assistant", "text": "Use sorted().", "emojis": {"+1": 2, "-1": 1},
             "replies": [{"message_id": "m3", "role": "prompter", "text": "Thanks!", "replies": []}]}
    tree = {"message_tree_id": "t1", "prompt": {"message_id": "m1", "role": "prompter", "text": "Sort?",
                                                "replies": [reply]}}
    (tmp_path / "oasst.jsonl").write_text(json.dumps(tree) + "\n")

    result = CliRunner().invoke(cli.app, ["replay", str(tmp_path / "oasst.jsonl"), "--tenant", "acme"],
                                obj=Wiring(private))

    assert result.exit_code == 0, result.output
    assert "feedback signals sent" in result.output
    received = asyncio.run(consume_all(embedded_stack.kafka_bootstrap, private.chat_events_topic,
                                       private.partitions))
    assert {key for key, _ in received} == {b"acme:oasst-t1-m3"}
    assert [event.role.value if isinstance(event, ChatEvent) else event.signal for _, event in received] == [
        "user", "assistant", "user", "thumbs", "thumbs", "thumbs"]
    assert sorted(event.up for _, event in received[3:]) == [False, True, True]
    assert {event.message_turn for _, event in received[3:]} == {1}
