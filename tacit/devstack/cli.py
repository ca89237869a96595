"""The embedded stack's commands: ``demo``, ``up`` and the ``stack`` group."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tacit.core.cli import JsonOption, console, echo_json, wiring
from tacit.core.endpoints import COMPONENTS, external_address, read_state
from tacit.core.settings import TacitSettings
from tacit.devstack import stack

app = typer.Typer()
stack_app = typer.Typer(help="Start, stop and inspect the embedded stack (Tansu, PostgreSQL, Ray).",
                        no_args_is_help=True)
app.add_typer(stack_app, name="stack")


@app.command()
def demo(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(min=1, help="Replay only this many conversations.")] = None,
) -> None:
    """Run the whole pipeline once on the embedded stack and the bundled chat logs, then print a summary."""
    from tacit.devstack import demo as demo_module

    demo_module.run(wiring(ctx).settings(), console, limit=limit)


@app.command()
def up(ctx: typer.Context) -> None:
    """Run the platform on the embedded stack (worker, and scoring once a model exists) until Ctrl-C."""
    from tacit.devstack import platform

    platform.run(wiring(ctx).settings(), console)


@stack_app.command("up")
def stack_up(ctx: typer.Context) -> None:
    """Start the embedded components that are not configured elsewhere and not running yet."""
    stack.up(wiring(ctx).settings(), report=console.print)


@stack_app.command("down")
def stack_down(ctx: typer.Context) -> None:
    """Stop exactly the processes that `tacit stack up` started (by PID)."""
    stack.down(wiring(ctx).settings(), report=console.print)


@stack_app.command("status")
def stack_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show where each component runs."""
    settings = wiring(ctx).settings()
    if as_json:
        echo_json(status_json(settings))
        return
    for name, line in stack.status(settings).items():
        console.print(f"{name:9s} {line}")


def status_json(settings: TacitSettings) -> dict[str, dict[str, Any]]:
    """Component -> its state (external, running, dead or stopped), address, PID and log, and the line
    `stack status` shows for it."""
    state, lines = read_state(settings), stack.status(settings)
    components = {}
    for name in COMPONENTS:
        external, record = external_address(settings, name), state.get(name)
        if external:
            found = {"state": "external", "address": external, "pid": None, "log": None}
        elif record:
            found = {"state": "running" if record.alive() else "dead", "address": record.address,
                     "pid": record.pids[0] if record.pids else None, "log": record.log}
        else:
            found = {"state": "stopped", "address": None, "pid": None, "log": None}
        components[name] = {**found, "description": lines[name]}
    return components
