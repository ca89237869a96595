"""``tacit demo``: the whole pipeline once, on the embedded stack and the bundled sample of real chat logs.

stack up -> replay -> worker labels -> train on Ray -> serve -> score held-out HH-RLHF pairs -> summary ->
stack down. The demo owns a fresh data directory (``<data_dir>/demo``), so its figures never mix with an
earlier run, and it stops every process it started, also when a step fails.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import and_, func, select
from tqdm import tqdm

from tacit.core.db import FeedbackRow, MessageRow, ModelVersion, RejectedEvent, make_engine
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS, SAMPLE_CONVERSATIONS
from tacit.devstack import stack
from tacit.devstack.processes import log_tail, tacit_child

WORKER_STALL_S = 120.0
# Share of each level among real WildChat follow-ups as WildReward's labeler rated them (per cent).
WILDREWARD_SHARES = {1: 3, 2: 14, 3: 76, 4: 6, 5: 1}
DISSATISFIED_EXAMPLES = 3


class DemoError(TacitError):
    """A step failed; the message names the step and where its log is."""


@dataclass
class Summary:
    timings: dict[str, float] = field(default_factory=dict)
    conversations: int = 0
    events: int = 0
    messages: int = 0
    followups: int = 0
    dead_letters: int = 0
    levels: dict[int, int] = field(default_factory=dict)
    dissatisfied: list[str] = field(default_factory=list)  # a few stored level-1/2 follow-ups, to read
    model_version: int = 0
    model_metrics: dict = field(default_factory=dict)
    artifact: str = ""
    pairs: int = 0
    pairwise_accuracy: float = 0.0
    longer_wins: float = 0.0  # the same pairs judged by length alone: the bar a reward model must clear


@contextmanager
def _step(name: str, console: Console, summary: Summary) -> Iterator[None]:
    console.rule(f"[bold]{name}")
    started = time.monotonic()
    try:
        yield
    except DemoError:
        raise
    except Exception as exc:
        raise DemoError(f"step '{name}' failed: {type(exc).__name__}: {exc}") from exc
    summary.timings[name] = time.monotonic() - started
    console.print(f"[green]done[/green] in {summary.timings[name]:.1f}s")


def run(settings: TacitSettings, console: Console, *, limit: int | None = None) -> Summary:
    settings = settings.model_copy(update={"data_dir": settings.data_dir / "demo"})
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    summary = Summary()
    try:
        _pipeline(settings, console, summary, limit)
    finally:
        console.rule("[bold]stack down")
        stack.down(settings, report=console.print)
    _print_summary(settings, console, summary)
    return summary


def _pipeline(settings: TacitSettings, console: Console, summary: Summary, limit: int | None) -> None:
    from tacit.core.domain import REFINED
    from tacit.ingest.replay import ReplayOptions, replay
    from tacit.ingest.store import PendingStore

    with _step("stack up", console, summary):
        endpoints = stack.up(settings, report=console.print)
    engine = make_engine(endpoints.database_url)

    with _step("replay the bundled chat logs", console, summary):
        report = replay(SAMPLE_CONVERSATIONS, settings, endpoints.kafka_bootstrap, ReplayOptions("tacit", limit=limit))
        summary.conversations, summary.events = report.conversations, report.events
        console.print(f"{report.events} chat events from {report.conversations} conversations "
                      f"(HH-RLHF and OpenAssistant) sent to '{settings.chat_events_topic}'")

    with _step("worker: find follow-ups, label them, store them", console, summary):
        log = settings.data_dir / "logs" / "worker.log"
        with tacit_child(settings, "worker", log=log):
            _wait_for_messages(engine, report.events, log)
        with engine.connect() as conn:
            summary.messages = conn.scalar(select(func.count()).select_from(MessageRow))
            raw = FeedbackRow.stage == "raw"  # each follow-up also has a refined or filtered row
            summary.followups = conn.scalar(select(func.count()).select_from(FeedbackRow).where(raw))
            summary.dead_letters = conn.scalar(select(func.count()).select_from(RejectedEvent))
            rows = conn.execute(select(FeedbackRow.level, func.count()).where(raw).group_by(FeedbackRow.level))
            summary.levels = dict(sorted((int(level), count) for level, count in rows))
            summary.dissatisfied = _dissatisfied_followups(conn)
        # The replayed conversations are complete: their waiting neutral items need not sit out the idle timer.
        finalised = PendingStore(engine).finalise_idle(0)
        with engine.connect() as conn:
            mined = conn.scalar(select(func.count()).select_from(FeedbackRow)
                                .where(FeedbackRow.stage == REFINED, FeedbackRow.reason.startswith("mined:")))
        console.print(f"implicit-feedback mining: {mined} neutral items relabelled positive; "
                      f"{finalised} waiting items finalised unchanged (the replay is over)")

    with _step("train the reward model on Ray", console, summary):
        from tacit.trainer.job import run_training

        summary.model_version = run_training(settings, use_ray=True)
        with engine.connect() as conn:
            row = conn.execute(select(ModelVersion).where(ModelVersion.id == summary.model_version)).one()
            summary.model_metrics, summary.artifact = row.metrics, row.artifact_uri

    with _step("serve it and score held-out HH-RLHF pairs", console, summary):
        from tacit.core.apikeys import create
        from tacit.model.client import ScoringClient
        from tacit.serving.server import start_in_background
        from tacit.trainer.evaluate import load_hh_pairs, pairwise_accuracy
        from tacit.trainer.quality import longer_wins

        pairs = load_hh_pairs(HELDOUT_PAIRS)
        _, api_key = create(engine, "demo", "tacit demo")
        with start_in_background(settings, version=summary.model_version) as server:
            console.print(f"scoring service at {server.url} (POST /v1/score, POST /get_reward)")
            with ScoringClient(server.url, api_key=api_key) as client:
                summary.pairs = len(pairs)
                summary.pairwise_accuracy = pairwise_accuracy(client.get_reward, pairs)
                summary.longer_wins = longer_wins(pairs)
    engine.dispose()


def _dissatisfied_followups(conn) -> list[str]:
    """The follow-ups of the first stored level-1/2 labels: the signal a product team most wants to see."""
    followup = and_(MessageRow.tenant == FeedbackRow.tenant,
                    MessageRow.conversation_id == FeedbackRow.conversation_id,
                    MessageRow.turn_index == FeedbackRow.followup_turn)
    rows = conn.execute(select(FeedbackRow.level, MessageRow.content).join(MessageRow, followup)
                        .where(FeedbackRow.stage == "raw", FeedbackRow.level <= 2)
                        .order_by(FeedbackRow.id).limit(DISSATISFIED_EXAMPLES))
    return [f"level {level}: {' '.join(content.split())[:160]}" for level, content in rows]


def _wait_for_messages(engine, expected: int, log: Path) -> None:
    """Until every replayed event is stored; fails when the worker stops making progress."""
    stored, last_progress = 0, time.monotonic()
    with tqdm(total=expected, desc="stored", unit=" events") as progress:
        while stored < expected:
            time.sleep(1.0)
            with engine.connect() as conn:
                now = conn.scalar(select(func.count()).select_from(MessageRow))
            if now > stored:
                progress.update(now - stored)
                stored, last_progress = now, time.monotonic()
            elif time.monotonic() - last_progress > WORKER_STALL_S:
                raise DemoError(f"the worker stored {stored}/{expected} events and then nothing for "
                                f"{WORKER_STALL_S:.0f}s; its log ({log}) ends with:\n{log_tail(log)}")


def _print_summary(settings: TacitSettings, console: Console, summary: Summary) -> None:
    console.rule("[bold]Tacit demo: summary")
    table = Table(show_header=False, box=None)
    table.add_row("chat events replayed", f"{summary.events} ({summary.conversations} conversations)")
    table.add_row("messages stored", str(summary.messages))
    table.add_row("follow-ups found and labeled", str(summary.followups))
    table.add_row("dead letters", str(summary.dead_letters))
    total = sum(summary.levels.values()) or 1
    names = {1: "rejection", 2: "error correction", 3: "neutral", 4: "positive engagement", 5: "satisfaction"}
    for level, count in summary.levels.items():
        table.add_row(f"  level {level} {names[level]}",
                      f"{count} ({100 * count / total:.1f}%; WildReward ~{WILDREWARD_SHARES[level]}%)")
    table.add_row("model version", f"v{summary.model_version} at {summary.artifact}")
    for name, value in summary.model_metrics.items():
        if isinstance(value, (int, float)):
            table.add_row(f"  {name.replace('_', ' ')}", f"{value:.3f}" if isinstance(value, float) else str(value))
    table.add_row("held-out HH-RLHF pairs scored", str(summary.pairs))
    table.add_row("pairwise accuracy (chance 0.500)", f"{summary.pairwise_accuracy:.3f}")
    table.add_row("  the longer reply wins, same pairs", f"{summary.longer_wins:.3f}")
    for name, seconds in summary.timings.items():
        table.add_row(f"  time: {name}", f"{seconds:.1f}s")
    console.print(table)
    if summary.dissatisfied:
        console.print("\nStored dissatisfaction, for example:")
        for line in summary.dissatisfied:
            console.print(f"  {line}", markup=False)
    console.print(
        "\nWhere to look next:\n"
        f"  data, database files and logs: {settings.data_dir}\n"
        f"  the model: {summary.artifact} (loads with AutoModelForSequenceClassification)\n"
        f"  explore the store: TACIT_DATA_DIR={settings.data_dir} tacit stack up, then `tacit serve`\n"
        "  your own logs: `tacit up` in one shell, `tacit replay your_logs.jsonl` in another (docs: getting started)"
    )
