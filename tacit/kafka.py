"""Kafka topics that Tacit owns, created explicitly with the partition counts the worker expects.

Brokers that auto-create topics (Tansu gives them 4 partitions) would break Faust tables, whose changelog
must have exactly as many partitions as the source topic, so every topic is declared here up front.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from tacit.settings import TacitSettings

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
