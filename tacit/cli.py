"""The ``tacit`` command line.

The CLI (with :mod:`tacit.demo`) is where the stages are composed; every stage import is inside its
command so that ``tacit --help`` stays fast and the core modules of ``tacit`` never depend on a stage.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tacit import stack
from tacit.errors import TacitError
from tacit.settings import TacitSettings, get_settings

console = Console(stderr=True)
app = typer.Typer(
    help="Tacit: turn live chatbot logs into an ordinal reward model that keeps learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="Start, stop and inspect the embedded stack (Tansu, PostgreSQL, Ray).",
                        no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")


def _settings() -> TacitSettings:
    return get_settings()


def main() -> None:
    """Console entry point: errors a user can act on are printed as one message, not a traceback."""
    try:
        app(prog_name="tacit")
    except TacitError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)


def _endpoint(component: str) -> str:
    return stack.endpoint(_settings(), component)


# ------------------------------------------------------------------------------------------------- stack


@stack_app.command("up")
def stack_up() -> None:
    """Start the embedded components that are not configured elsewhere and not running yet."""
    stack.up(_settings(), report=console.print)


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes that `tacit stack up` started (by PID)."""
    stack.down(_settings(), report=console.print)


@stack_app.command("status")
def stack_status() -> None:
    """Show where each component runs."""
    for name, line in stack.status(_settings()).items():
        console.print(f"{name:9s} {line}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the configured or embedded database."""
    from tacit import db

    db.upgrade(_endpoint("postgres"))
    console.print("schema at the newest migration")


# ------------------------------------------------------------------------------------------------ ingest


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL (or .jsonl.gz) of conversations.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant of the events (default: TACIT_DEFAULT_TENANT).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many conversations.")] = None,
) -> None:
    """Send a log file's conversations to the chat-events topic, one event per message."""
    from ingest.replay import replay as replay_file

    report = replay_file(file, _settings(), _endpoint("kafka"), tenant=tenant, limit=limit)
    console.print(f"replayed {report.conversations} conversations, {report.events} events")
    for reason, count in report.skipped.most_common():
        console.print(f"  skipped {count}: {reason}")


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug.")] = "warn",
) -> None:
    """Run a stream worker: rate follow-ups and store them in Postgres, until interrupted."""
    from ingest.app import run_worker

    run_worker(_settings(), _endpoint("kafka"), _endpoint("postgres"), loglevel=loglevel)


# ----------------------------------------------------------------------------------------------- trainer


models_app = typer.Typer(help="Model versions: list, inspect, promote, roll back.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@app.command()
def train(
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps (default: TACIT_TRAIN_STEPS).")] = None,
    ray: Annotated[bool, typer.Option("--ray/--local", help="Run as a Ray task, or in this process.")] = True,
    incremental: Annotated[bool, typer.Option(help="Start from the champion's weights, not the base model.")] = False,
    tenant: Annotated[list[str] | None, typer.Option(help="Only these tenants (repeatable).")] = None,
    labeler: Annotated[list[str] | None, typer.Option(help="Only ratings by these labelers (repeatable).")] = None,
    stage: Annotated[list[str] | None, typer.Option(help="Rating stages to use (repeatable; default raw).")] = None,
    level: Annotated[list[int] | None, typer.Option(min=1, max=5, help="Only these levels (repeatable).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only replies sent at or after this time.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Only replies sent before this time.")] = None,
    split: Annotated[str, typer.Option(help="Holdout by 'user' (unseen people) or 'time' (newest).")] = "user",
    scheme: Annotated[str, typer.Option(help="'wildfb' (neutral dropped, 4 classes) or 'five'.")] = "wildfb",
    layout: Annotated[str, typer.Option(help="Model input: 'compact' or 'wildreward'.")] = "compact",
    head: Annotated[str, typer.Option(help="'coral' (rank-consistent) or 'independent' (WildReward).")] = "coral",
    accumulate: Annotated[int, typer.Option(min=1, help="Gradient accumulation: batches per optimizer step.")] = 1,
    class_weighting: Annotated[bool, typer.Option(help="Weigh every class equally in the loss.")] = False,
    save_every: Annotated[int, typer.Option(min=0, help="Save a resumable state every N steps (0: never).")] = 0,
    resume: Annotated[int | None, typer.Option(help="Continue the interrupted run with this id.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Data-parallel Ray Train workers (DDP); >1 implies --ray.")] = 1,
) -> None:
    """Train a reward model on the stored labels, evaluate it against the champion, promote or reject it."""
    from trainer.dataset import Selection
    from trainer.job import run_training

    _endpoint("postgres")
    if ray or workers > 1:
        _endpoint("ray")
    selection = Selection(tenants=tuple(tenant or ()), labelers=tuple(labeler or ()),
                          stages=tuple(stage or ("raw",)), levels=tuple(level or ()), since=since, until=until)
    try:
        version = run_training(
            _settings(), use_ray=ray, steps=steps, selection=selection, incremental=incremental, resume=resume,
            split=split, label_scheme=scheme, layout=layout, head=head, gradient_accumulation_steps=accumulate,
            class_weighting=class_weighting, save_every=save_every, workers=workers,
        )
    except ValueError as exc:  # an unknown choice, named with the valid ones
        raise typer.BadParameter(str(exc)) from None
    _print_version(version)


@app.command()
def schedule(
    cron: Annotated[str | None, typer.Option(help="Cron expression, UTC (default: TACIT_SCHEDULE_CRON).")] = None,
    min_new_labels: Annotated[int | None, typer.Option(min=1, help="Retrain once this many labels arrived "
                                                       "(default: TACIT_SCHEDULE_MIN_NEW_LABELS).")] = None,
    poll: Annotated[float, typer.Option(min=1, help="Seconds between checks.")] = 60.0,
    once: Annotated[bool, typer.Option(help="Check once, train if due, and exit (for an external cron).")] = False,
    ray: Annotated[bool, typer.Option("--ray/--local", help="Train as a Ray task, or in this process.")] = True,
) -> None:
    """Retrain on a cron expression and/or when enough new labels arrived; never two runs at once."""
    import logging

    from tacit.db import make_engine
    from trainer.job import run_training
    from trainer.schedule import Schedule, run_schedule

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings()
    plan = Schedule(cron or settings.schedule_cron, min_new_labels or settings.schedule_min_new_labels)
    engine = make_engine(_endpoint("postgres"))
    try:
        run_schedule(plan, engine, lambda: run_training(settings, use_ray=ray), poll_seconds=poll, once=once)
    finally:
        engine.dispose()


@models_app.command("list")
def models_list() -> None:
    """Every model version with its status and headline metrics."""
    from rich.table import Table

    from trainer.registry import list_versions

    table = Table("version", "status", "created", "promoted", "holdout qwk", "holdout ece", "pairwise")
    for version in list_versions(_registry()):
        metrics = version.metrics
        pairwise = ", ".join(f"{k[9:]} {v:.3f}" for k, v in metrics.items() if k.startswith("pairwise_"))
        table.add_row(str(version.id), version.status, f"{version.created_at:%Y-%m-%d %H:%M}",
                      f"{version.promoted_at:%Y-%m-%d %H:%M}" if version.promoted_at else "",
                      _number(metrics.get("holdout_qwk")), _number(metrics.get("holdout_ece")), pairwise)
    Console().print(table)


@models_app.command("show")
def models_show(version: Annotated[int, typer.Argument(help="Version number.")]) -> None:
    """A version's artifact, every metric, its reliability table, margin curves and decision history."""
    _print_version(version, details=True)


@models_app.command("promote")
def models_promote(
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "promoted by hand",
) -> None:
    """Make a version the champion (the previous one is retired) and announce it."""
    from trainer import events, registry

    events.publish(_settings(), registry.promote(_registry(), version, reason=reason))
    console.print(f"version {version} is the champion")


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "rolled back by hand",
) -> None:
    """Reject the champion and bring back the previous one, announced like a promotion."""
    from trainer import events, registry

    event = registry.rollback(_registry(), reason=reason)
    events.publish(_settings(), event)
    console.print(f"version {event['version']} is the champion again")


def _registry():
    from tacit.db import make_engine

    return make_engine(_endpoint("postgres"))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _print_version(version_id: int, *, details: bool = False) -> None:
    from trainer.registry import RegistryError, decisions, get_version

    engine = _registry()
    version = get_version(engine, version_id)
    if version is None:
        raise RegistryError(f"There is no model version {version_id}; `tacit models list` shows them.")
    out = Console()
    out.print(f"[bold]version {version.id}[/bold]: {version.status}, {version.artifact_uri}")
    for name, value in version.metrics.items():
        if isinstance(value, (int, float)):
            out.print(f"  {name:32s} {value:.4f}" if isinstance(value, float) else f"  {name:32s} {value}")
        elif details:
            out.print(f"  {name}:")
            for row in value:
                out.print("    " + "  ".join(f"{k} {_number(v) if isinstance(v, float) else v}" for k, v in row.items()))
    for decision in decisions(engine, version.id):
        out.print(f"  {decision.created_at:%Y-%m-%d %H:%M:%S} {decision.action}: " + "; ".join(decision.reasons))
    engine.dispose()


# ----------------------------------------------------------------------------------------------- serving


@app.command()
def serve(
    version: Annotated[int | None, typer.Option(help="Model version to serve (default: the champion).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(exists=True, file_okay=False,
                                                    help="Serve this checkpoint directory instead.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_SERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_SERVE_PORT).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run as a Ray Serve deployment (TACIT_SERVE_RAY_*).")] = False,
) -> None:
    """Serve reward scores over HTTP: POST /v1/score, /v1/compare and the WildReward-compatible
    POST /get_reward; serving the champion follows its promotions (hot swap)."""
    from serving.server import serve as run_server

    run_server(_settings(), version=version, checkpoint=checkpoint, host=host, port=port, on_ray=ray)


@app.command()
def score(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to score (already in the model's layout).")] = None,
    pairs: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                               help="HH-RLHF preference file: print pairwise accuracy.")] = None,
    url: Annotated[str | None, typer.Option(help="Scoring service (default: http://TACIT_SERVE_HOST:PORT).")] = None,
) -> None:
    """Score texts, or a preference file's pairs, with a running scoring service."""
    from serving.client import ScoringClient

    settings = _settings()
    base_url = url or f"http://{settings.serve_host}:{settings.serve_port}"
    if not texts and pairs is None:
        raise typer.BadParameter("give texts to score, or --pairs FILE")
    with ScoringClient(base_url) as client:
        if pairs is not None:
            from trainer.evaluate import load_hh_pairs, pairwise_accuracy

            loaded = load_hh_pairs(pairs)
            accuracy = pairwise_accuracy(client.get_reward, loaded)
            typer.echo(f"pairwise accuracy {accuracy:.4f} on {len(loaded)} pairs")
        if texts:
            for text, reward in zip(texts, client.get_reward(texts), strict=True):
                typer.echo(f"{reward:.4f}\t{text}")


# -------------------------------------------------------------------------------------------- whole system


@app.command()
def demo(
    limit: Annotated[int | None, typer.Option(min=1, help="Replay only this many conversations.")] = None,
) -> None:
    """Run the whole pipeline once on the embedded stack and the bundled chat logs, then print a summary."""
    from tacit import demo as demo_module

    demo_module.run(_settings(), console, limit=limit)


@app.command()
def up() -> None:
    """Run the platform on the embedded stack (worker, and scoring once a model exists) until Ctrl-C."""
    from tacit import platform

    platform.run(_settings(), console)
