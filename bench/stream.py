"""Stream worker throughput: chat events/s through Kafka -> Faust -> labels -> Postgres for one worker, against
two baselines on the same topic, measured in one run on a private Tansu and PostgreSQL: a bare aiokafka
consumer, and a bare Faust agent (the worker's own app configuration, an agent that only counts records).

The events are the bundled real chat logs (``tacit/data/sample_conversations.jsonl.gz``), replayed once
(repeated ``--copies`` times under fresh conversation ids for a longer run). The worker's rate is the number
of events it stored divided by the time between its first and its last stored batch, so the start-up of the
process and the group join (seconds on Tansu) are not counted; the baseline reads the same records with a
plain consumer and does nothing else: the ceiling of any Python consumer on this machine. The bare Faust
agent is the ceiling of any Faust worker: what the framework's per-record machinery costs on its own.

    python bench/stream.py [--copies 1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select

from tacit.core.db import MessageRow, make_engine
from tacit.core.domain import ChatEvent
from tacit.core.settings import TacitSettings
from tacit.data import SAMPLE_CONVERSATIONS
from tacit.devstack import stack
from tacit.devstack.processes import tacit_child
from tacit.ingest.app import faust_app
from tacit.ingest.events import encode_event
from tacit.readers.importers import ImportReport, read_conversations


def load_events(copies: int) -> list[ChatEvent]:
    events = [e for conversation in read_conversations(SAMPLE_CONVERSATIONS, "bench", ImportReport(), "tacit") for e in conversation]
    return [e.model_copy(update={"conversation_id": f"{e.conversation_id}~{copy}"})
            for copy in range(copies) for e in events]


async def produce(bootstrap: str, topic: str, events: list[ChatEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value=value, key=key)
                               for key, value in map(encode_event, events)])
    finally:
        await producer.stop()


async def bare_consume_rate(bootstrap: str, topic: str, expected: int) -> float:
    """Records/s of a plain consumer reading the topic from the start (the first fetch excluded)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        seen, first_fetch, started = 0, 0, 0.0
        while seen < expected:
            fetched = sum(map(len, (await consumer.getmany(timeout_ms=1000, max_records=5000)).values()))
            if fetched and not seen:
                first_fetch, started = fetched, time.perf_counter()
            seen += fetched
        return (seen - first_fetch) / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _count_with_faust(settings: TacitSettings, bootstrap: str, expected: int, result: Path) -> None:
    """Child process: a Faust worker whose agent only counts; writes its rate, then stops itself."""
    import faust

    app = faust_app(settings, bootstrap, "tacit-bench-bare-faust")
    source = app.topic(settings.chat_events_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=settings.partitions)

    @app.agent(source)
    async def count(stream):
        seen, started = 0, 0.0
        async for _ in stream:
            seen += 1
            if seen == 1:
                started = time.perf_counter()
            if seen == expected:
                result.write_text(str((seen - 1) / (time.perf_counter() - started)))
                os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def bare_faust_rate(settings: TacitSettings, bootstrap: str, expected: int) -> float:
    """Records/s of a Faust agent that does nothing, from its first record to its last."""
    result = settings.data_dir / "bare-faust-rate"
    child = multiprocessing.get_context("spawn").Process(target=_count_with_faust,
                                                         args=(settings, bootstrap, expected, result))
    child.start()
    try:
        child.join(timeout=300)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    if not result.exists():
        raise SystemExit("the bare Faust agent did not finish within 300 s")
    return float(result.read_text())


def worker_rate(settings: TacitSettings, database_url: str, expected: int) -> float:
    """Events/s of one ``tacit worker`` between its first and its last stored batch."""
    engine = make_engine(database_url)
    log = settings.data_dir / "logs" / "bench-worker.log"

    def stored() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(MessageRow))

    with tacit_child(settings, "worker", log=log):
        first = 0
        while (first := stored()) == 0:
            time.sleep(0.05)
        started = time.perf_counter()
        last, last_change = first, time.perf_counter()
        while (now := stored()) < expected:
            if now != last:
                last, last_change = now, time.perf_counter()
            elif time.perf_counter() - last_change > 120:
                raise SystemExit(f"the worker stopped at {now}/{expected} events; see {log}")
            time.sleep(0.05)
        finished = time.perf_counter()
    engine.dispose()
    return (expected - first) / (finished - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=1, help="Times the bundled logs are replayed.")
    args = parser.parse_args()
    events = load_events(args.copies)
    data_dir = Path(tempfile.mkdtemp(prefix="tacit-bench-stream-"))
    settings = TacitSettings(data_dir=data_dir, ray_address="not-used:1")
    try:
        endpoints = stack.up(settings, report=lambda line: None)
        asyncio.run(produce(endpoints.kafka_bootstrap, settings.chat_events_topic, events))
        bare = asyncio.run(bare_consume_rate(endpoints.kafka_bootstrap, settings.chat_events_topic, len(events)))
        bare_faust = bare_faust_rate(settings, endpoints.kafka_bootstrap, len(events))
        ours = worker_rate(settings, endpoints.database_url, len(events))
    finally:
        stack.down(settings, report=lambda line: None)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{len(events):,} chat events, 1 worker, {settings.partitions} partitions, batch {settings.sink_batch_size}")
    print(f"bare aiokafka consumer   {bare:10,.0f} events/s (1.00x)")
    print(f"bare Faust agent         {bare_faust:10,.0f} events/s ({bare_faust / bare:.2f}x)")
    print(f"tacit worker (stored)    {ours:10,.0f} events/s ({ours / bare:.2f}x; {ours / bare_faust:.2f}x of bare Faust)")


if __name__ == "__main__":
    main()
