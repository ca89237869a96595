"""The ingest stage's commands: ``replay``, ``worker``, ``gateway`` and ``relabel``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from tacit.core.cli import console, wiring

app = typer.Typer()


@app.command()
def replay(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Log file: JSONL (gzip ok) or parquet.")],
    format_name: Annotated[str | None, typer.Option(
        "--format", help="tacit, wildchat, lmsys, sharegpt, openai, hh or oasst (default: from the first record).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant of the events (default: TACIT_DEFAULT_TENANT).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many conversations.")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Send at most this many events per second.")] = None,
) -> None:
    """Send a log file's conversations to the chat-events topic, one event per message.

    Formats (one record per JSONL line; wildchat and lmsys also as .parquet):

    tacit: {"conversation_id", "user_id"?, "model"?, "messages": [{"role", "content"}]}.

    wildchat: WildChat {"conversation_hash", "hashed_ip" (the user), "model", "language",
    "conversation": [{"role", "content", "timestamp"?}]}.

    lmsys: LMSYS-Chat-1M {"conversation_id", "model", "language", "conversation": [{"role", "content"}]}.

    sharegpt: {"id", "conversations": [{"from": "human"|"gpt"|"system", "value"}]}.

    openai: {"messages": [{"role", "content"}]}, content a string or a list of parts (text parts kept);
    tool messages and tool-call-only replies are left out.

    hh: HH-RLHF {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected"}: the chosen transcript.

    oasst: OpenAssistant message trees {"message_tree_id", "prompt": {..., "replies": [...]}}: every
    root-to-leaf path is a conversation, the tree its user.

    System messages are kept (role system). Conversation ids come from the source (a hash of the messages
    where it has none), so importing a file twice changes nothing downstream. Unusable records are skipped
    and counted by reason.
    """
    from rich.table import Table

    from tacit.ingest.replay import ReplayOptions
    from tacit.ingest.replay import replay as replay_file

    wired = wiring(ctx)
    options = ReplayOptions(format_name, tenant=tenant, limit=limit, rate=rate)
    report = replay_file(file, wired.settings(), wired.endpoint("kafka"), options)
    table = Table(title=f"replayed {file.name}")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("events sent", str(report.events))
    table.add_row("feedback signals sent", str(report.signals))
    table.add_row("conversations", str(report.conversations))
    for reason, count in report.skipped.most_common():
        table.add_row(f"skipped: {reason}", str(count))
    console.print(table)


@app.command()
def worker(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug.")] = "warn",
) -> None:
    """Run a stream worker: rate follow-ups and store them in Postgres, until interrupted."""
    from tacit.ingest.app import run_worker

    wired = wiring(ctx)
    run_worker(wired.settings(), wired.endpoint("kafka"), wired.endpoint("postgres"), loglevel=loglevel)


@app.command()
def gateway(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_GATEWAY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_GATEWAY_PORT).")] = None,
) -> None:
    """Take chat events over HTTP (POST /v1/events with a tenant's API key) and put them on Kafka."""
    from tacit.ingest.gateway import run

    run(wiring(ctx).settings(), host=host, port=port)


@app.command()
def relabel(
    ctx: typer.Context,
    labeler: Annotated[str | None, typer.Option(help="Labeler to use (default: TACIT_LABELER).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's conversations.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only conversations seen since then (ISO time).")] = None,
) -> None:
    """Derive the labels again (raw, refined, filtered, pending) from the stored messages; safe to run twice."""
    from rich.progress import Progress

    from tacit.ingest.relabel import Scope, count_conversations
    from tacit.ingest.relabel import relabel as run_relabel
    from tacit.labels import get_labeler
    from tacit.refine.mining import Miner
    from tacit.refine.pipeline import get_validator

    wired = wiring(ctx)
    settings = wired.settings()
    engine = wired.engine()
    scope = Scope(tenant, since)
    chosen = get_labeler(labeler or settings.labeler, settings)
    with Progress(console=console) as progress:
        task = progress.add_task("conversations", total=count_conversations(engine, scope))
        written = run_relabel(engine, chosen, scope, settings.conversation_window, Miner.from_settings(settings),
                              get_validator(settings), on_chunk=lambda done: progress.advance(task, done))
    stages = ", ".join(f"{stage} {count}" for stage, count in sorted(written.items())) or "nothing"
    console.print(f"relabeled with {chosen.labeler_id} {chosen.version}: {stages}")
