"""Freshness: from a burst of new follow-ups to a promoted model that serves them, and where the time goes.

On a private embedded stack (Tansu, PostgreSQL, Ray): the worker stores a first part of the bundled chat
logs and a first model is trained and served (not timed). Then the scheduler (`tacit schedule`, retraining
once enough new labels arrived) and the scoring service run while a burst of new conversations is replayed,
and the run measures, on one clock:

- labels: from the first event of the burst to the last of its messages stored (worker: labels, refinement);
- wait for the schedule: from then to the training run's start (the poll interval, or less when the
  threshold is crossed before the burst is all stored: then negative);
- dataset, training, evaluation: the run's own timings (evaluation scores the champion too);
- registry and gate: the rest of the run (version row, promotion, announcements);
- swap: from the run's end until the scoring service answers with the new version.

    python bench/freshness.py [--first 1500] [--burst 500] [--steps 100] [--poll 5]

Implicit-feedback mining is off here: it holds neutral items until their conversation goes idle, which would
measure that timer (TACIT_MINING_IDLE_SECONDS) rather than the pipeline. The promotion gate is opened
(TACIT_GATE_TOLERANCE=1): the first model is barely trained, and the figure is the path to serving.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tacit.core.db import MessageRow, TrainingRun, make_engine
from tacit.core.examples import label_scheme
from tacit.core.settings import TacitSettings
from tacit.data import SAMPLE_CONVERSATIONS
from tacit.devstack import stack
from tacit.devstack.processes import tacit_child
from tacit.ingest.replay import ReplayOptions, replay
from tacit.labels.rules import RulesLabeler
from tacit.serving.server import start_in_background
from tacit.trainer.job import run_training
from tacit.trainer.quality import examples_from_log
from tacit.trainer.train import TrainConfig


def wait_for(condition, what: str, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := condition()) is not None:
            return value
        time.sleep(interval)
    raise SystemExit(f"gave up after {timeout:.0f}s waiting for {what}")


def split_sample(directory: Path, first: int, burst: int) -> tuple[Path, Path]:
    with gzip.open(SAMPLE_CONVERSATIONS, "rt") as lines:
        head = list(itertools.islice(lines, first + burst))
    parts = directory / "first.jsonl", directory / "burst.jsonl"
    parts[0].write_text("".join(head[:first]))
    parts[1].write_text("".join(head[first:]))
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first", type=int, default=1500, help="conversations stored before the burst")
    parser.add_argument("--burst", type=int, default=500, help="conversations in the burst")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: TACIT_TRAIN_STEPS)")
    parser.add_argument("--poll", type=float, default=5.0, help="the scheduler's seconds between checks")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tacit-freshness-") as work:
        os.environ["TACIT_MINING_ENABLED"] = "false"  # read by the worker and scheduler children too
        os.environ["TACIT_GATE_TOLERANCE"] = "1"  # measure the path to serving, not whether the gate passes
        if args.steps:
            os.environ["TACIT_TRAIN_STEPS"] = str(args.steps)
        settings = TacitSettings(data_dir=Path(work) / "data")
        first, burst = split_sample(Path(work), args.first, args.burst)
        scheme = label_scheme(TrainConfig().label_scheme)
        burst_labels = sum(scheme.keeps(e) for e in examples_from_log(burst, RulesLabeler()))
        endpoints = stack.up(settings, report=lambda line: None)
        try:
            measure(settings, endpoints, first, burst, burst_labels, args.poll)
        finally:
            stack.down(settings, report=lambda line: None)


def measure(settings: TacitSettings, endpoints, first: Path, burst: Path, burst_labels: int, poll: float) -> None:
    engine = make_engine(endpoints.database_url)
    logs = settings.data_dir / "logs"

    def stored() -> int:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(MessageRow))

    with tacit_child(settings, "worker", log=logs / "worker.log"):
        events = replay(first, settings, endpoints.kafka_bootstrap, ReplayOptions("tacit")).events
        wait_for(lambda: True if stored() >= events else None, "the first conversations to be stored", 600)
        # Something to serve, barely trained, so that the gate promotes the scheduled run's model.
        champion = run_training(settings, use_ray=False, steps=1)
        with start_in_background(settings) as server:
            threshold = max(1, burst_labels // 2)
            with tacit_child(settings, "schedule", "--min-new-labels", str(threshold), "--poll", str(poll),
                             log=logs / "schedule.log"):
                started = datetime.now(UTC)
                events += replay(burst, settings, endpoints.kafka_bootstrap, ReplayOptions("tacit")).events
                wait_for(lambda: True if stored() >= events else None, "the burst to be stored", 600)
                labeled = datetime.now(UTC)
                served = wait_for(lambda: _serving_newer(server.url, champion), "the new model to be served",
                                  1800, interval=0.2)
                served_at = datetime.now(UTC)
    with engine.connect() as connection:
        run = connection.execute(select(TrainingRun.started_at, TrainingRun.finished_at, TrainingRun.timings)
                                 .order_by(TrainingRun.id.desc()).limit(1)).one()
    engine.dispose()
    report(started, labeled, run, served, served_at, threshold)


def _serving_newer(url: str, champion: int) -> int | None:
    try:
        version = httpx.get(f"{url}/readyz", timeout=2).json().get("model_version")
    except httpx.HTTPError:
        return None
    return version if version is not None and version > champion else None


def report(started: datetime, labeled: datetime, run, served: int, served_at: datetime, threshold: int) -> None:
    timings = run.timings or {}
    steps = {
        "labels (worker)": (labeled - started).total_seconds(),
        "wait for the schedule": (run.started_at - labeled).total_seconds(),
        "dataset": timings.get("load", 0.0),
        "training": timings.get("train", 0.0),
        "evaluation": timings.get("evaluate", 0.0),
    }
    run_seconds = (run.finished_at - run.started_at).total_seconds()
    steps["registry and gate"] = run_seconds - sum(timings.get(k, 0.0) for k in ("load", "train", "evaluate"))
    steps["swap"] = (served_at - run.finished_at).total_seconds()
    total = (served_at - started).total_seconds()
    print(f"burst to served model v{served} (retrain threshold {threshold} new labels): {total:.1f}s")
    for name, seconds in steps.items():
        print(f"  {name:24s} {seconds:7.1f}s  ({seconds / total:5.1%})")


if __name__ == "__main__":
    main()
