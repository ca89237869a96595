"""What to serve: a checkpoint, a registry version or the champion, loaded into the app that serves it.

Shared by the in-process server and each Ray Serve replica, which build the same app the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from tacit.core.apikeys import KeyVerifier
from tacit.core.artifacts import local_copy
from tacit.core.db import ModelVersion, make_engine
from tacit.core.endpoints import endpoint
from tacit.core.errors import TacitError
from tacit.core.registry import champion, get_version
from tacit.core.settings import TacitSettings
from tacit.serving.app import create_app
from tacit.serving.model import ServedModel, load_scorer
from tacit.serving.swap import ChampionFollower

log = logging.getLogger(__name__)


class ModelNotFoundError(TacitError, LookupError):
    """The registry has nothing to serve for the request; the message says what to do."""


class NoChampionYet(ModelNotFoundError):
    """Nothing has been promoted yet: a service started with the platform may wait for the first model."""


@dataclass(frozen=True)
class ServingTarget:
    checkpoint: Path
    version: int | None  # None for a checkpoint that is not in the registry


def resolve_target(
    settings: TacitSettings, *, version: int | None = None, checkpoint: Path | None = None
) -> ServingTarget:
    """An explicit checkpoint directory, else that registry version, else the current champion."""
    if checkpoint is not None and version is not None:
        raise ValueError("Pass either a checkpoint directory or a model version, not both.")
    if checkpoint is not None:
        return ServingTarget(Path(checkpoint), None)
    row = _registry_row(settings, version)
    target = ServingTarget(local_copy(row.artifact_uri, settings), row.id)
    if not (target.checkpoint / "config.json").is_file():
        raise ModelNotFoundError(
            f"Model version {row.id} points at {target.checkpoint}, which holds no checkpoint any more; "
            "serve another version, or retrain with `tacit train`."
        )
    return target


def _registry_row(settings: TacitSettings, version: int | None) -> ModelVersion:
    engine = make_engine(endpoint(settings, "postgres"))
    try:
        row = champion(engine) if version is None else get_version(engine, version)
    finally:
        engine.dispose()
    if row is None and version is None:
        raise NoChampionYet("No champion model yet: run `tacit train` (or start the service with --wait).")
    if row is None:
        raise ModelNotFoundError(f"There is no model version {version} in the registry.")
    return row


def wait_for_champion(settings: TacitSettings, poll_s: float = 5.0, report=log.info,
                      sleep=time.sleep) -> None:
    """Return once a champion exists: a scoring service deployed before the first training run waits for
    it (one log line) instead of failing and being restarted in a loop by its supervisor."""
    reported = False
    while True:
        try:
            resolve_target(settings)
            return
        except NoChampionYet:
            if not reported:
                report(f"no champion model yet; checking every {poll_s:g}s")
                reported = True
            sleep(poll_s)


def load_app(
    settings: TacitSettings, *, version: int | None = None, checkpoint: Path | None = None
) -> FastAPI:
    """Serving the champion means following it: each later promotion is swapped in. A version or
    checkpoint asked for by name stays."""
    target = resolve_target(settings, version=version, checkpoint=checkpoint)
    scorer = load_scorer(target.checkpoint, settings)
    follow = version is None and checkpoint is None
    follower = partial(ChampionFollower, settings) if follow else None
    return create_app(ServedModel(scorer, target.version), settings, follower, _key_verifier(settings))


def _key_verifier(settings: TacitSettings) -> KeyVerifier | None:
    """Keys live in Postgres, so requiring them needs the database even to serve a bare checkpoint."""
    if not settings.require_api_keys:
        return None
    return KeyVerifier(make_engine(endpoint(settings, "postgres")), settings.api_key_cache_s)
