"""Scoring service under concurrent load: Tacit's engine against a WildReward-style worker, same model.

Both serve ``POST /get_reward`` from a subprocess, with the bundled MiniLM and a fresh 3-threshold head
(the speed of a model does not depend on its training), with the same torch threads (``--threads``,
default: what ``tacit serve`` takes, one physical core fewer than the machine has):

- **wildreward**: what WildReward's workers do: the model is called inside the async handler, the
  request's texts in fixed batches of 16, each padded to the model's maximum length (512 for MiniLM, the
  analogue of WildReward's 4096), in float32, as a worker without a GPU runs it;
- **tacit float32**: ``tacit serve`` in the same precision: dynamic micro-batching across requests by
  length, padding to each batch's longest text, the model on its own thread. Its ratio is the engine's;
- **tacit bf16** (``TACIT_PRECISION=auto``, ``tacit serve``'s default, bf16 where the CPU computes it
  natively) and **tacit int8** (``TACIT_SERVE_QUANTIZE=int8``): the engine *and* a cheaper model, whose
  rewards differ from float32 (bf16 hardly, int8 more: see the benchmarks page of the docs); their ratios are not the
  engine's alone; and int8 again with a batch token budget of 1024 instead of 8192, for latency.

The texts are real HH-RLHF transcripts, a realistic mix of lengths (the header prints their token
percentiles), sampled with the same seed for both. This process is the load generator for both engines,
so its CPU use (printed) weighs the same on each. Measured in one run, one engine after the other:

- capacity: texts/s with ``--concurrency`` clients sending back to back, and the server's CPU seconds per
  1000 texts, which other jobs on a shared machine disturb far less than the wall clock;
- latency p50/p99 at a fixed offered load of half of each engine's own capacity (Poisson arrivals);
- for Tacit in float32, the same half load while a new version is promoted (the swap pause).

Other ``TACIT_SERVE_*`` variables in the environment (``TACIT_SERVE_BATCH_TOKENS``, ...) reach both Tacit
servers.

    python bench/serve.py [--seconds 10] [--concurrency 16] [--texts-per-request 8] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "tacit" / "data" / "heldout_pairs.jsonl.gz"
WILDREWARD_BATCH = 16
MAX_LENGTH = 512  # MiniLM's limit; WildReward pads to its own, 4096
# Tacit with a cheaper model than the baseline's float32 (never mistaken for the engine's gain), and with
# a smaller batch token budget, which trades nothing on a CPU (a batch is hardly cheaper per text there)
# for shorter waits behind the call in progress.
VARIANTS = {
    "tacit bf16 (TACIT_PRECISION=auto)": {"TACIT_PRECISION": "auto"},
    "tacit int8 (TACIT_SERVE_QUANTIZE=int8)": {"TACIT_SERVE_QUANTIZE": "int8"},
    "tacit int8, TACIT_SERVE_BATCH_TOKENS=1024": {"TACIT_SERVE_QUANTIZE": "int8", "TACIT_SERVE_BATCH_TOKENS": "1024"},
}


# ------------------------------------------------------------------------------ the WildReward-style worker


def wildreward_app(checkpoint: Path, threads: int):
    """WildReward's worker, on the same checkpoint and threads as Tacit's."""
    import torch
    from fastapi import FastAPI
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tacit.model.hardware import default_device

    torch.set_num_threads(threads)
    device = default_device()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, dtype=torch.float32).to(device).eval()
    app = FastAPI()

    @app.post("/get_reward")
    async def get_reward(body: dict) -> dict:
        rewards: list[float] = []
        for start in range(0, len(body["query"]), WILDREWARD_BATCH):
            batch = tokenizer(
                body["query"][start : start + WILDREWARD_BATCH],
                padding="max_length",
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            ).to(device)
            with torch.no_grad():
                logits = model(**batch).logits.float()
            rewards += (1 + torch.sigmoid(logits).sum(-1)).tolist()
        return {"rewards": rewards}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


# ------------------------------------------------------------------------------------------------- set-up


def save_checkpoint(directory: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tacit.core.settings import TacitSettings

    base = TacitSettings().resolved_base_model()
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3)
    model.config.tacit = {"layout": "compact", "levels": [1, 2, 4, 5], "max_length": MAX_LENGTH}
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(base).save_pretrained(directory)
    return directory


def registry(directory: Path, checkpoints: list[Path]) -> str:
    """A SQLite registry whose first version is champion; the service polls it for promotions."""
    from sqlalchemy.orm import Session

    from tacit.core.db import Base, ModelStatus, ModelVersion, make_engine

    url = f"sqlite:///{directory / 'registry.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        for number, checkpoint in enumerate(checkpoints, start=1):
            status = ModelStatus.CHAMPION if number == 1 else ModelStatus.CANDIDATE
            session.add(
                ModelVersion(
                    id=number,
                    base_model="minilm",
                    artifact_uri=str(checkpoint),
                    status=status.value,
                    metrics={},
                )
            )
    engine.dispose()
    return url


def promote(url: str, version: int) -> None:
    from sqlalchemy import update

    from tacit.core.db import ModelStatus, ModelVersion, make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        champion = ModelVersion.status == ModelStatus.CHAMPION.value
        connection.execute(update(ModelVersion).where(champion).values(status=ModelStatus.RETIRED.value))
        connection.execute(
            update(ModelVersion).where(ModelVersion.id == version).values(status=ModelStatus.CHAMPION.value)
        )
    engine.dispose()


def workload() -> list[str]:
    with gzip.open(PAIRS, "rt") as lines:
        records = [json.loads(line) for line in lines]
    return [record[side].strip() for record in records for side in ("chosen", "rejected")]


@dataclass(frozen=True)
class Server:
    url: str
    process: psutil.Process

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system


@contextmanager
def server(command: list[str], port: int, env: dict[str, str]) -> Iterator[Server]:
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/healthz").raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(command)} did not start") from None
                time.sleep(0.2)
        yield Server(url, psutil.Process(process.pid))
    finally:
        process.terminate()
        process.wait(30)


# ------------------------------------------------------------------------------------------------ load


@dataclass
class Run:
    latencies: list[float]
    texts: int
    seconds: float
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def throughput(self) -> float:
        return self.texts / self.seconds

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000

    def row(self, name: str) -> str:
        return (
            f"{name:36s} {self.throughput:7.1f} texts/s  p50 {self.percentile(50):7.1f} ms  "
            f"p99 {self.percentile(99):7.1f} ms  ({len(self.latencies)} requests)  server CPU "
            f"{self.server_cpu_s / self.texts * 1000:5.1f} s/1000 texts, client CPU "
            f"{self.client_cpu_s / self.seconds:.2f} cores"
        )


class Load:
    def __init__(self, url: str, texts: list[str], per_request: int) -> None:
        self.url, self.texts, self.per_request = url, texts, per_request
        self.random = random.Random(0)

    async def _one(self, client: httpx.AsyncClient, latencies: list[float]) -> None:
        batch = self.random.sample(self.texts, self.per_request)
        started = time.perf_counter()
        response = await client.post("/get_reward", json={"query": batch})
        response.raise_for_status()
        latencies.append(time.perf_counter() - started)

    async def closed(self, concurrency: int, seconds: float) -> Run:
        """Clients that send their next request as soon as the last is answered: the capacity."""
        latencies: list[float] = []
        async with httpx.AsyncClient(
            base_url=self.url, timeout=120, limits=httpx.Limits(max_connections=concurrency)
        ) as client:
            started = time.perf_counter()

            async def client_loop() -> None:
                while time.perf_counter() - started < seconds:
                    await self._one(client, latencies)

            await asyncio.gather(*(client_loop() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        return Run(latencies, len(latencies) * self.per_request, elapsed)

    async def open(self, texts_per_s: float, seconds: float, during=None) -> Run:
        """Poisson arrivals at a fixed rate, however slow the answers: the latency a caller sees.
        ``during`` is a coroutine run alongside (a promotion)."""
        latencies: list[float] = []
        rate = texts_per_s / self.per_request
        async with httpx.AsyncClient(
            base_url=self.url, timeout=120, limits=httpx.Limits(max_connections=512)
        ) as client:
            started = time.perf_counter()
            tasks = [asyncio.create_task(during)] if during is not None else []
            while time.perf_counter() - started < seconds:
                tasks.append(asyncio.create_task(self._one(client, latencies)))
                await asyncio.sleep(self.random.expovariate(rate))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - started
        return Run(latencies, len(latencies) * self.per_request, elapsed)


async def swap_during_load(url: str, registry_url: str, delay_s: float) -> None:
    """Promote version 2 after ``delay_s`` and print how long until the service answered with it."""
    await asyncio.sleep(delay_s)
    promoted = time.perf_counter()
    await asyncio.to_thread(promote, registry_url, 2)
    async with httpx.AsyncClient(base_url=url) as client:
        while (await client.get("/v1/model")).json()["model_version"] != 2:
            await asyncio.sleep(0.05)
    print(
        f"  promotion to serving version 2: {time.perf_counter() - promoted:.2f} s "
        "(registry poll, load, canary, swap)"
    )


# ------------------------------------------------------------------------------------------------ main


def measured(server: Server, run) -> Run:
    """``run`` (a coroutine) with the CPU seconds that the server and this load generator spent on it."""
    server_before, client_before = server.cpu_seconds(), time.process_time()
    result = asyncio.run(run)
    result.server_cpu_s = server.cpu_seconds() - server_before
    result.client_cpu_s = time.process_time() - client_before
    return result


def measure(name: str, server: Server, load: Load, args: argparse.Namespace) -> tuple[Run, Run]:
    asyncio.run(load.closed(args.concurrency, min(args.seconds, 3)))  # warm-up: allocator, oneDNN kernels
    capacity = measured(server, load.closed(args.concurrency, args.seconds))
    print(capacity.row(f"{name}: capacity, {args.concurrency} clients"))
    half = measured(server, load.open(capacity.throughput / 2, args.seconds))
    print(half.row(f"{name}: half capacity"))
    return capacity, half


def describe(texts: list[str]) -> str:
    from transformers import AutoTokenizer

    from tacit.core.settings import TacitSettings

    tokenizer = AutoTokenizer.from_pretrained(TacitSettings().resolved_base_model())
    lengths = sorted(min(len(ids), MAX_LENGTH) for ids in tokenizer(texts)["input_ids"])
    p50, p90 = (lengths[len(lengths) * q // 100] for q in (50, 90))
    long, cut = (sum(length >= limit for length in lengths) / len(lengths) for limit in (256, MAX_LENGTH))
    return (
        f"{len(texts)} HH-RLHF transcripts (tokens p50 {p50}, p90 {p90}, mean {statistics.mean(lengths):.0f}, "
        f"max {lengths[-1]}; {long:.1%} of 256 or more, {cut:.1%} at {MAX_LENGTH})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--texts-per-request", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch CPU threads of both servers (default: tacit's)")
    parser.add_argument("--port", type=int, default=18931)
    parser.add_argument("--wildreward-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from tacit.core.settings import TacitSettings
    from tacit.serving.model import torch_threads

    args.threads = args.threads or torch_threads(TacitSettings())
    if args.wildreward_worker is not None:
        import uvicorn

        app = wildreward_app(args.wildreward_worker, args.threads)
        uvicorn.run(app, port=args.port, log_level="warning")
        return

    texts = workload()
    print(
        f"{describe(texts)}, {args.texts_per_request} per request, MiniLM, max length {MAX_LENGTH}, "
        f"{os.cpu_count()} CPUs, torch threads {args.threads}, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        first = save_checkpoint(Path(scratch) / "v1")
        second = Path(shutil.copytree(first, Path(scratch) / "v2"))
        registry_url = registry(Path(scratch), [first, second])
        baseline_command = [
            sys.executable,
            __file__,
            "--wildreward-worker",
            str(first),
            "--port",
            str(args.port),
        ]
        with server(baseline_command + ["--threads", str(args.threads)], args.port, {}) as worker:
            baseline, baseline_half = measure(
                "wildreward float32", worker, Load(worker.url, texts, args.texts_per_request), args
            )
        tacit_env = {
            "TACIT_DATABASE_URL": registry_url,
            "TACIT_SERVE_POLL_S": "0.5",
            "TACIT_REQUIRE_API_KEYS": "false",
            "TACIT_MAX_LENGTH": str(MAX_LENGTH),
            "TACIT_SERVE_PORT": str(args.port),
            "TACIT_SERVE_THREADS": str(args.threads),
            "TACIT_PRECISION": "float32",
        }
        with server([sys.executable, "-m", "tacit", "serve"], args.port, tacit_env) as tacit:
            load = Load(tacit.url, texts, args.texts_per_request)
            ours, ours_half = measure("tacit float32", tacit, load, args)
            swap = measured(
                tacit,
                load.open(
                    ours.throughput / 2,
                    args.seconds,
                    during=swap_during_load(tacit.url, registry_url, args.seconds / 3),
                ),
            )
            print(swap.row("tacit float32: half capacity, with a swap"))
        pinned = [sys.executable, "-m", "tacit", "serve", "--checkpoint", str(first)]
        results = {"tacit float32": (ours, ours_half)}
        for name, env in VARIANTS.items():
            with server(pinned, args.port, {**tacit_env, **env}) as tacit:
                results[name] = measure(name, tacit, Load(tacit.url, texts, args.texts_per_request), args)
    for name, (run, half) in results.items():
        print(
            f"{name} / wildreward float32: throughput {run.throughput / baseline.throughput:.2f}x, server CPU "
            f"per text {baseline.server_cpu_s / baseline.texts / (run.server_cpu_s / run.texts):.2f}x; p99 at "
            f"half capacity {half.percentile(99):.1f} ms (wildreward {baseline_half.percentile(99):.1f} ms)"
        )

if __name__ == "__main__":
    main()
