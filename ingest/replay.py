"""``tacit replay``: send a log file's conversations to the chat-events topic, as a live app would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from ingest.events import encode_event
from ingest.importers import ImportReport, read_conversations
from tacit.settings import TacitSettings


async def _produce(path: Path, settings: TacitSettings, bootstrap: str, tenant: str,
                   limit: int | None, report: ImportReport) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024, enable_idempotence=False)
    await producer.start()
    try:
        pending = []
        with tqdm(desc=f"replay {path.name}", unit=" events", disable=None) as progress:
            for events in read_conversations(path, tenant, report):
                for event in events:
                    key, value = encode_event(event)
                    pending.append(await producer.send(settings.chat_events_topic, value=value, key=key))
                progress.update(len(events))
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
                if limit is not None and report.conversations >= limit:
                    break
            await asyncio.gather(*pending)
    finally:
        await producer.stop()


def replay(path: Path, settings: TacitSettings, bootstrap: str, *, tenant: str | None = None,
           limit: int | None = None) -> ImportReport:
    """Produce every conversation of ``path`` (at most ``limit``); every send is acknowledged by all replicas."""
    report = ImportReport()
    asyncio.run(_produce(path, settings, bootstrap, tenant or settings.default_tenant, limit, report))
    return report
