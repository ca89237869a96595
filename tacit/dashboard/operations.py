"""Stream lag per partition, as a Prometheus scrape of the workers would show it, read from Kafka itself.

The workers' ``tacit_worker_consumer_lag`` gauge lives in each worker process; the dashboard instead asks the
broker for the end of every partition and the consumer group's committed offset, which covers all workers
at once and needs no scrape target.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from tacit.core.kafka import client_options, end_offsets
from tacit.core.settings import TacitSettings

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the workers never committed on it
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


async def stream_lag(settings: TacitSettings, bootstrap: str) -> list[PartitionLag] | None:
    """Lag of the workers' group on every chat-events partition; None when Kafka does not answer in time."""
    partitions = [TopicPartition(settings.chat_events_topic, p) for p in range(settings.partitions)]
    try:
        async with asyncio.timeout(TIMEOUT_S):
            ends = await end_offsets(bootstrap, partitions, timeout_s=TIMEOUT_S, options=client_options(settings))
            committed = await _committed(settings, bootstrap, partitions)
    except (KafkaError, TimeoutError, OSError):
        return None
    return [PartitionLag(tp.partition, committed[tp], ends[tp]) for tp in partitions]


async def _committed(settings: TacitSettings, bootstrap: str,
                     partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    """The group's offsets, read by a consumer that never subscribes, so it never joins the group."""
    group = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=settings.worker_app_id,
                             enable_auto_commit=False, **client_options(settings))
    await group.start()
    try:
        return {tp: await group.committed(tp) for tp in partitions}
    finally:
        await group.stop()
