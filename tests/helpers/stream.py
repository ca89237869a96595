"""Records onto the real broker and stream workers as child processes, for the worker's integration tests."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from tacit.core.settings import TacitSettings
from tacit.devstack.processes import tacit_child


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> list[tuple[int, int]]:
    """Send records and return (partition, offset) of each, once acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in records]
        return [(meta.partition, meta.offset) for meta in await asyncio.gather(*sent)]
    finally:
        await producer.stop()


def worker(settings: TacitSettings, name: str):
    """A worker that logs its assignments and table recovery, what a failure here has to be read from; its
    log is ``logs/<name>.log`` in the data directory."""
    return tacit_child(settings, "worker", "--loglevel", "info", log=settings.data_dir / "logs" / f"{name}.log")
