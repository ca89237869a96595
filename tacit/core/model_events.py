"""Model events on Kafka: consumers that cannot LISTEN on Postgres (other services, audit pipelines) learn
of promotions from the ``model-events`` topic. Postgres NOTIFY, sent in the promotion's own transaction,
stays the authoritative signal; this is the same JSON, produced right after the commit."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from tacit.core.endpoints import endpoint
from tacit.core.settings import TacitSettings

logger = logging.getLogger(__name__)


async def _send(bootstrap: str, topic: str, event: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(event).encode(), key=b"model")
    finally:
        await producer.stop()


def publish(settings: TacitSettings, event: dict[str, Any]) -> None:
    """Produce ``event`` to ``settings.model_events_topic``. The promotion is already committed, so a
    broker that cannot be reached is reported, not raised: the NOTIFY listeners have the event."""
    try:
        asyncio.run(_send(endpoint(settings, "kafka"), settings.model_events_topic, event))
    except Exception as exc:  # noqa: BLE001 - any broker failure leaves the committed promotion valid
        logger.warning("Version %s is promoted, but announcing it on Kafka failed: %s", event["version"], exc)
