"""Ingest gateway throughput: chat events/s through ``POST /v1/events`` against producing the same events
straight to Kafka with aiokafka, measured in one run on a private embedded stack.

    python bench/gateway.py [--events 20000] [--batch 100] [--concurrency 8] [--rounds 3]

Both sides send the bundled real chat messages in batches of ``--batch`` from ``--concurrency`` concurrent
senders, and a batch counts once Kafka acknowledged all of it (``acks=all``), which is what a 202 from the
gateway means. The gateway runs as its own process (``tacit gateway``), as in production; the difference is
the cost of HTTP, JSON parsing, validation and the key check. The two take turns, ``--rounds`` times with
a share of the events each, so that both meet the same load on a shared machine; each also reports the CPU
time per event of the process doing its work (the benchmark's own for the direct producer, the gateway's),
which load moves less than rates.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaProducer

from tacit.core import apikeys
from tacit.core.db import make_engine
from tacit.core.domain import ChatEvent
from tacit.core.settings import TacitSettings
from tacit.data import SAMPLE_CONVERSATIONS
from tacit.devstack import stack
from tacit.devstack.processes import log_tail, tacit_child
from tacit.ingest.events import encode_event
from tacit.readers.importers import ImportReport, read_conversations

TENANT = "bench"


def chat_events(count: int) -> list[dict]:
    """``count`` real messages (the bundled sample, repeated under new conversation ids if need be)."""
    events = [e for conversation in read_conversations(SAMPLE_CONVERSATIONS, TENANT, ImportReport()) for e in conversation]
    rounds = itertools.count()
    out: list[dict] = []
    while len(out) < count:
        round_ = next(rounds)
        out += [e.model_dump(mode="json") | {"conversation_id": f"{e.conversation_id}-{round_}"} for e in events]
    return out[:count]


async def seconds(send_batch: Callable[[list[dict]], Awaitable[None]], events: list[dict], batch: int,
                  concurrency: int) -> float:
    """How long ``concurrency`` senders take, each taking the next batch once its last one was acknowledged."""
    batches = iter([events[i:i + batch] for i in range(0, len(events), batch)])

    async def sender() -> None:
        for chunk in batches:
            await send_batch(chunk)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return time.perf_counter() - started


async def direct_seconds(bootstrap: str, topic: str, events: list[dict], batch: int, concurrency: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()

    async def send_batch(chunk: list[dict]) -> None:
        deliveries = []
        for raw in chunk:  # validated like the gateway does, so only transport and HTTP differ
            key, value = encode_event(ChatEvent.model_validate(raw))
            deliveries.append(await producer.send(topic, value=value, key=key))
        await asyncio.gather(*deliveries)

    try:
        return await seconds(send_batch, events, batch, concurrency)
    finally:
        await producer.stop()


async def gateway_seconds(url: str, key: str, events: list[dict], batch: int, concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:

        async def send_batch(chunk: list[dict]) -> None:
            response = await client.post("/v1/events", json={"events": chunk})
            response.raise_for_status()

        return await seconds(send_batch, events, batch, concurrency)


def rounds(events: list[dict], count: int) -> list[list[dict]]:
    """``events`` in ``count`` consecutive shares."""
    size = -(-len(events) // count)
    return [events[i:i + size] for i in range(0, len(events), size)]


def wait_until_up(url: str, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.ConnectError:
            time.sleep(0.2)
    raise SystemExit(f"the gateway did not start; its log ends with:\n{log_tail(log)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="Turns each side takes, on a share of the events.")
    args = parser.parse_args()
    events = chat_events(args.events)
    os.environ["TACIT_API_RATE_PER_SECOND"] = "1e9"  # the gateway's capacity is measured, not the key's budget
    with tempfile.TemporaryDirectory(prefix="tacit-bench-gateway-") as data_dir:
        settings = TacitSettings(data_dir=Path(data_dir), gateway_port=stack.free_port())
        try:
            endpoints = stack.up(settings, report=lambda line: None)
            engine = make_engine(endpoints.database_url)
            _, key = apikeys.create(engine, TENANT, "bench")
            engine.dispose()
            url = f"http://{settings.gateway_host}:{settings.gateway_port}"
            log = settings.data_dir / "logs" / "gateway.log"
            with tacit_child(settings, "gateway", "--port", str(settings.gateway_port), log=log) as child:
                wait_until_up(url, log)
                asyncio.run(gateway_seconds(url, key, events[: args.batch * 4], args.batch, 2))  # warm-up
                direct, gateway = Side(psutil.Process()), Side(psutil.Process(child.pid))
                for chunk in rounds(events, args.rounds):
                    direct.measure(direct_seconds(endpoints.kafka_bootstrap, settings.chat_events_topic, chunk,
                                                  args.batch, args.concurrency))
                    gateway.measure(gateway_seconds(url, key, chunk, args.batch, args.concurrency))
        finally:
            stack.down(settings, report=lambda line: None)
    print(f"{args.events} chat events, batches of {args.batch}, {args.concurrency} concurrent senders, acks=all, "
          f"{args.rounds} rounds")
    print(f"aiokafka producer (direct)  {direct.rate(args.events):9.0f} events/s   1.00x   "
          f"{direct.cpu_us(args.events):5.0f} µs CPU/event (this process: validation and producer)")
    print(f"gateway POST /v1/events     {gateway.rate(args.events):9.0f} events/s   "
          f"{gateway.rate(args.events) / direct.rate(args.events):.2f}x   "
          f"{gateway.cpu_us(args.events):5.0f} µs CPU/event (the gateway process)")


@dataclass
class Side:
    """The time one side took over its rounds, and the CPU time of the process doing its work."""

    process: psutil.Process
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def measure(self, run: Coroutine[Any, Any, float]) -> None:
        cpu = sum(self.process.cpu_times()[:2])
        self.seconds += asyncio.run(run)
        self.cpu_seconds += sum(self.process.cpu_times()[:2]) - cpu

    def rate(self, events: int) -> float:
        return events / self.seconds

    def cpu_us(self, events: int) -> float:
        return self.cpu_seconds / events * 1e6


if __name__ == "__main__":
    main()
