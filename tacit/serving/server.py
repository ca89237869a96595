"""What to serve, and serving it: in the foreground (``tacit serve``) or on a background thread, so that the
demo and the tests score over real HTTP without managing a second process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from tacit.core.apikeys import KeyVerifier
from tacit.core.db import ModelVersion, make_engine
from tacit.core.endpoints import endpoint
from tacit.core.errors import TacitError
from tacit.core.registry import champion, get_version
from tacit.core.settings import TacitSettings
from tacit.serving.app import create_app
from tacit.serving.model import ServedModel, load_scorer
from tacit.serving.swap import ChampionFollower

STARTUP_TIMEOUT_S = 60.0


class ModelNotFoundError(TacitError, LookupError):
    """The registry has nothing to serve for the request; the message says what to do."""


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
    target = ServingTarget(Path(row.artifact_uri), row.id)
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
        raise ModelNotFoundError("No champion model yet: run `tacit train`.")
    if row is None:
        raise ModelNotFoundError(f"There is no model version {version} in the registry.")
    return row


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


def serve(
    settings: TacitSettings,
    *,
    version: int | None = None,
    checkpoint: Path | None = None,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Serve in this process until interrupted; host and port default to the settings."""
    host = host or settings.serve_host
    port = settings.serve_port if port is None else port
    uvicorn.run(load_app(settings, version=version, checkpoint=checkpoint), host=host, port=port)


class BackgroundServer:
    """uvicorn on a daemon thread of this process; a context manager that stops it on exit."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        # Bound here, not by uvicorn, so that a busy port fails in the caller and port 0 finds a free one.
        self._socket = socket.create_server((host, port))
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="tacit-serve", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The scoring server at {self.url} did not start; its log is above.")
            time.sleep(0.05)

    def stop(self) -> None:
        """Finish the requests in flight, shut the model thread down, and release the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def start_in_background(
    settings: TacitSettings, *, version: int | None = None, checkpoint: Path | None = None, port: int = 0
) -> BackgroundServer:
    """A started server (``.url``) on ``settings.serve_host``; port 0 picks a free one."""
    app = load_app(settings, version=version, checkpoint=checkpoint)
    server = BackgroundServer(app, settings.serve_host, port)
    server.start()
    return server
