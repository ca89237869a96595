"""Kafka topics that Tacit owns, and the true end offsets of their partitions.

Brokers that auto-create topics (Tansu gives them 4 partitions) would break Faust tables, whose changelog
must have exactly as many partitions as the source topic, so every topic is declared here up front.

Tansu answers ListOffsets "latest" with the last *batch's* base offset + 1 instead of the end of the log, so
``end_offsets``, ``seek_to_end`` and Faust's changelog recovery stop short of the last records. The high
watermark in a fetch response is right, so :func:`end_offsets` fetches the last reported record and reads
the watermark that comes back with it (on a correct broker that is the same number).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from tacit.core.settings import TacitSettings

CONVERSATION_TABLE = "conversations"


def changelog_topic(settings: TacitSettings, table: str) -> str:
    """Faust's naming of a table's changelog topic."""
    return f"{settings.worker_app_id}-{table}-changelog"


def required_topics(settings: TacitSettings) -> dict[str, int]:
    """Topic name -> partitions, for everything the worker reads or writes."""
    partitions = settings.partitions
    return {
        settings.chat_events_topic: partitions,
        settings.dead_letter_topic: partitions,
        changelog_topic(settings, CONVERSATION_TABLE): partitions,
        f"{settings.worker_app_id}-__assignor-__leader": 1,
        settings.model_events_topic: 1,  # one partition: consumers see promotions in the order they happened
    }


async def _ensure_topics(bootstrap: str, topics: dict[str, int]) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in topics.items() if name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return [topic.name for topic in missing]
    finally:
        await admin.close()


def ensure_topics(bootstrap: str, settings: TacitSettings) -> list[str]:
    """Create the missing topics; returns the names it created."""
    return asyncio.run(_ensure_topics(bootstrap, required_topics(settings)))


async def end_offsets(bootstrap: str | list[str], partitions: Collection[TopicPartition],
                      timeout_s: float = 30.0) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition, also on Tansu (see the module docstring).

    A probe consumer of its own (no group) does the fetch, so the caller's positions are left alone.
    """
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    await probe.start()
    try:
        probe.assign(list(partitions))
        reported = await probe.end_offsets(list(partitions))
        pending = [tp for tp, end in reported.items() if end > 0]
        for tp in pending:
            probe.seek(tp, reported[tp] - 1)
        async with asyncio.timeout(timeout_s):
            while pending:
                await probe.getmany(*pending, timeout_ms=500)
                pending = [tp for tp in pending if probe.highwater(tp) is None]
        return {tp: max(end, probe.highwater(tp) or 0) for tp, end in reported.items()}
    finally:
        await probe.stop()
