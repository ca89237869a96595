"""``tacit replay``: send a log file's conversations to the chat-events topic, as a live app would: each
conversation's messages, then the feedback signals on them where the format has them (OpenAssistant's)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer
from pydantic import TypeAdapter, ValidationError
from tqdm import tqdm

from tacit.core.domain import Tenant
from tacit.core.errors import TacitError
from tacit.core.kafka import client_options
from tacit.core.settings import TacitSettings
from tacit.ingest.events import encode_event
from tacit.ingest.ratelimit import TokenBucket
from tacit.readers.importers import ImportReport, read_conversations

PENDING_SENDS = 5000  # acknowledgements awaited together: bounds memory, keeps the producer's batches full


@dataclass(frozen=True)
class ReplayOptions:
    format_name: str | None = None  # a key of tacit.readers.formats.FORMATS; None: detected from the file
    tenant: str | None = None  # None: settings.default_tenant
    limit: int | None = None  # most conversations to send
    rate: float | None = None  # most events per second


async def _produce(path: Path, settings: TacitSettings, bootstrap: str, options: ReplayOptions,
                   report: ImportReport) -> None:
    tenant = _valid_tenant(options.tenant or settings.default_tenant)
    bucket = TokenBucket(options.rate) if options.rate else None
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024, enable_idempotence=False, **client_options(settings))
    await producer.start()
    try:
        pending = []
        with tqdm(desc=f"replay {path.name}", unit=" events", disable=None) as progress:
            for events in read_conversations(path, tenant, report, options.format_name, signals=True):
                if bucket:
                    await bucket.take(len(events))
                for event in events:
                    key, value = encode_event(event)
                    pending.append(await producer.send(settings.chat_events_topic, value=value, key=key))
                progress.update(len(events))
                if len(pending) >= PENDING_SENDS:
                    await asyncio.gather(*pending)
                    pending.clear()
                if options.limit is not None and report.conversations >= options.limit:
                    break
            await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _valid_tenant(tenant: str) -> str:
    """Checked once up front: a bad tenant would otherwise make every record of the file a skipped one."""
    try:
        return TypeAdapter(Tenant).validate_python(tenant)
    except ValidationError as exc:
        raise TacitError(f"tenant {tenant!r}: letters, digits, '_', '.' and '-' only (1-128)") from exc


def replay(path: Path, settings: TacitSettings, bootstrap: str,
           options: ReplayOptions = ReplayOptions()) -> ImportReport:
    """Produce the conversations of ``path``; every send is acknowledged by all replicas before it returns."""
    report = ImportReport()
    asyncio.run(_produce(path, settings, bootstrap, options, report))
    return report
