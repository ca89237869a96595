"""The ``tacit`` command line: the stages' Typer apps, composed.

Each stage owns its commands in its own ``cli.py`` (``tacit.ingest.cli``, ``tacit.trainer.cli``, ...); this
module adds them in the order of the pipeline and turns a :class:`TacitError` into one line on stderr.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Annotated

import typer

from tacit.core import cli as core_cli
from tacit.core.cli import console
from tacit.core.errors import TacitError
from tacit.dashboard import cli as dashboard_cli
from tacit.devstack import cli as devstack_cli
from tacit.ingest import cli as ingest_cli
from tacit.labels import cli as labels_cli
from tacit.rlhi import cli as rlhi_cli
from tacit.serving import cli as serving_cli
from tacit.trainer import cli as trainer_cli
from tacit.trainer import quality_cli

__all__ = ["app", "main"]

app = typer.Typer(
    help="Tacit: turn live chatbot logs into an ordinal reward model that keeps learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ingest_cli.app)  # replay, worker, gateway, relabel
app.add_typer(labels_cli.app)  # labelers
app.add_typer(trainer_cli.app)  # train, schedule, score, analyze
app.add_typer(quality_cli.app, name="eval")  # eval quality
app.add_typer(serving_cli.app)  # serve
app.add_typer(rlhi_cli.app)  # pairs, personas, export, dpo
app.add_typer(dashboard_cli.app)  # dashboard
app.add_typer(core_cli.app)  # db, keys, models
app.add_typer(devstack_cli.app)  # demo, up, stack


def main() -> None:
    """Console entry point: errors a user can act on are printed as one message, not a traceback."""
    try:
        app(prog_name="tacit")
    except TacitError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)


def _print_tacit_version(value: bool) -> None:
    if value:
        try:
            installed = metadata.version("tacit")
        except metadata.PackageNotFoundError:
            installed = "unknown (not installed)"
        typer.echo(f"tacit {installed}")
        raise typer.Exit()


@app.callback()
def tacit(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_tacit_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass  # the options above are eager: --version prints and exits before any command runs
