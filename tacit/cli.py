"""The ``tacit`` command line.

The CLI (with :mod:`tacit.demo`) is where the stages are composed; every stage import is inside its
command so that ``tacit --help`` stays fast and the core modules of ``tacit`` never depend on a stage.
"""

from __future__ import annotations

import sys
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


@app.command()
def train(
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps (default: TACIT_TRAIN_STEPS).")] = None,
    ray: Annotated[bool, typer.Option("--ray/--local", help="Run as a Ray task, or in this process.")] = True,
) -> None:
    """Train an ordinal reward model on the stored labels and register it as a new model version."""
    from trainer.job import run_training

    _endpoint("postgres")
    if ray:
        _endpoint("ray")
    version = run_training(_settings(), use_ray=ray, steps=steps)
    console.print(f"registered model version {version}")


# ----------------------------------------------------------------------------------------------- serving


@app.command()
def serve(
    version: Annotated[int | None, typer.Option(help="Model version to serve (default: the champion).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(exists=True, file_okay=False,
                                                    help="Serve this checkpoint directory instead.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_SERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_SERVE_PORT).")] = None,
) -> None:
    """Serve reward scores over HTTP: POST /v1/score and the WildReward-compatible POST /get_reward."""
    from serving.server import serve as run_server

    run_server(_settings(), version=version, checkpoint=checkpoint, host=host, port=port)


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
