"""What the commands that call a running scoring service share: its ``--url`` option and the client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tacit.core.settings import TacitSettings

if TYPE_CHECKING:
    from tacit.model.client import ScoringClient

ScoringUrlOption = Annotated[str | None, typer.Option(help="Scoring service (default: http://TACIT_SERVE_HOST:PORT).")]


def scoring_client(settings: TacitSettings, url: str | None) -> ScoringClient:
    """A client of the running scoring service at ``url`` (default: the settings'), with the key TACIT_API_KEY."""
    from tacit.model.client import ScoringClient

    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return ScoringClient(url or f"http://{settings.serve_host}:{settings.serve_port}", api_key=api_key)
