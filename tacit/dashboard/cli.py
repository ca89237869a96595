"""The dashboard's command: ``dashboard``."""

from __future__ import annotations

from typing import Annotated

import typer

from tacit.core.cli import wiring

app = typer.Typer()


@app.command()
def dashboard(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_DASHBOARD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_DASHBOARD_PORT).")] = None,
) -> None:
    """Serve the dashboard: satisfaction over time, labels, dissatisfied follow-ups, model versions and
    operations of the tenant whose API key signs in; checks satisfaction alerts in the background."""
    from tacit.dashboard.app import serve

    serve(wiring(ctx).settings(), host=host, port=port)
