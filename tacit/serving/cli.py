"""The scoring service's command: ``serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tacit.core.cli import wiring

app = typer.Typer()


@app.command()
def serve(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Option(help="Model version to serve (default: the champion).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(exists=True, file_okay=False,
                                                    help="Serve this checkpoint directory instead.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_SERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_SERVE_PORT).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run as a Ray Serve deployment (TACIT_SERVE_RAY_*).")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="With no champion yet, wait for the first one instead of "
                                       "failing (for a service deployed before any training run).")] = False,
) -> None:
    """Serve reward scores over HTTP: POST /v1/score, /v1/compare and the WildReward-compatible
    POST /get_reward; serving the champion follows its promotions (hot swap)."""
    from tacit.serving.server import serve as run_server

    run_server(wiring(ctx).settings(), version=version, checkpoint=checkpoint, host=host, port=port, on_ray=ray,
               wait=wait)
