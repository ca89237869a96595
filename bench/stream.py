"""Stream worker throughput: chat events/s through Kafka -> Faust -> labels -> Postgres for one worker, against
two baselines on the same topic, measured in one run on a private Tansu and PostgreSQL: a bare aiokafka
consumer, and a bare Faust agent (the worker's own app configuration, an agent that only counts records).

The events are the bundled real chat logs (``tacit/data/sample_conversations.jsonl.gz``), replayed once
(repeated ``--copies`` times under fresh conversation ids for a longer run). The worker's rate is the number
of events it stored divided by the time between its first and its last stored batch, so the start-up of the
process and the group join (seconds on Tansu) are not counted; the baseline reads the same records with a
plain consumer and does nothing else: the ceiling of any Python consumer on this machine. The bare Faust
agent is the ceiling of any Faust worker: what the framework's per-record machinery costs on its own.

With ``--workers 1 2`` it also runs two workers in one consumer group (each run on emptied tables and a
group of its own), and reports for each run the events per CPU-second of the workers (their user + system
time, from psutil) and the largest resident memory of one worker.

    python bench/stream.py [--copies 1] [--workers 1 2] [--partitions 2]
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
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select, text

from tacit.core.db import Conversation, FeedbackRow, MessageRow, RejectedEvent, SignalRow, make_engine
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


@dataclass(frozen=True)
class WorkerRun:
    """Events stored between the first and the last stored batch, and what the workers spent on them."""

    events: int
    seconds: float
    cpu_seconds: float  # user + system time of all the workers together over the same span
    peak_rss: int  # bytes: the largest resident set of any one worker, sampled while it ran

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.events / self.cpu_seconds


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def worker_run(settings: TacitSettings, database_url: str, expected: int, workers: int) -> WorkerRun:
    """``workers`` ``tacit worker`` processes in one group: their rate, CPU time and memory."""
    engine = make_engine(database_url)
    logs = [settings.data_dir / "logs" / f"bench-worker-{i}.log" for i in range(workers)]

    def stored() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(MessageRow))

    with ExitStack() as children:
        processes = [psutil.Process(children.enter_context(tacit_child(settings, "worker", log=log)).pid)
                     for log in logs]
        peak_rss = 0

        def sample() -> None:
            nonlocal peak_rss
            peak_rss = max(peak_rss, *(p.memory_info().rss for p in processes))

        while (first := stored()) == 0:
            sample()
            time.sleep(0.05)
        started, cpu_started = time.perf_counter(), _cpu_seconds(processes)
        last, last_change = first, time.perf_counter()
        while (now := stored()) < expected:
            sample()
            if now != last:
                last, last_change = now, time.perf_counter()
            elif time.perf_counter() - last_change > 120:
                raise SystemExit(f"the workers stopped at {now}/{expected} events; see {logs}")
            time.sleep(0.05)
        finished, cpu = time.perf_counter(), _cpu_seconds(processes) - cpu_started
    engine.dispose()
    return WorkerRun(expected - first, finished - started, cpu, peak_rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=1, help="Times the bundled logs are replayed.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="Worker counts to measure, each on a fresh database (e.g. 1 2).")
    parser.add_argument("--partitions", type=int, default=None, help="Partitions of the topics (TACIT_PARTITIONS).")
    args = parser.parse_args()
    if args.partitions:
        os.environ["TACIT_PARTITIONS"] = str(args.partitions)  # the workers read it too
    events = load_events(args.copies)
    data_dir = Path(tempfile.mkdtemp(prefix="tacit-bench-stream-"))
    settings = TacitSettings(data_dir=data_dir, ray_address="not-used:1")
    runs: dict[int, WorkerRun] = {}
    try:
        endpoints = stack.up(settings, report=lambda line: None)
        asyncio.run(produce(endpoints.kafka_bootstrap, settings.chat_events_topic, events))
        bare = asyncio.run(bare_consume_rate(endpoints.kafka_bootstrap, settings.chat_events_topic, len(events)))
        bare_faust = bare_faust_rate(settings, endpoints.kafka_bootstrap, len(events))
        for workers in args.workers:
            runs[workers] = worker_run(settings, endpoints.database_url, len(events), workers)
            reset(settings, endpoints.database_url, workers)
    finally:
        stack.down(settings, report=lambda line: None)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{len(events):,} chat events, {settings.partitions} partitions, batch {settings.sink_batch_size}")
    print(f"bare aiokafka consumer   {bare:10,.0f} events/s (1.00x)")
    print(f"bare Faust agent         {bare_faust:10,.0f} events/s ({bare_faust / bare:.2f}x)")
    for workers, run in runs.items():
        print(f"tacit worker x{workers} (stored) {run.rate:10,.0f} events/s ({run.rate / bare_faust:.2f}x of bare Faust); "
              f"{run.per_cpu_second:,.0f} events per worker CPU-second; peak RSS {run.peak_rss / 2**20:,.0f} MiB")


def reset(settings: TacitSettings, database_url: str, run: int) -> None:
    """A fresh start for the next run: empty tables, and a consumer group of its own."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        tables = ", ".join(t.__tablename__ for t in (MessageRow, Conversation, FeedbackRow, RejectedEvent, SignalRow))
        conn.execute(text(f"TRUNCATE {tables}"))
    engine.dispose()
    os.environ["TACIT_WORKER_APP_ID"] = f"{settings.worker_app_id}-{run}"


if __name__ == "__main__":
    main()
