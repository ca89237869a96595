"""Serving: in the foreground (``tacit serve``) or on a background thread, so that the
demo and the tests score over real HTTP without managing a second process."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from tacit.core.endpoints import ray_connection
from tacit.core.settings import TacitSettings
from tacit.serving.loading import load_app, wait_for_champion

STARTUP_TIMEOUT_S = 60.0


def serve(
    settings: TacitSettings,
    *,
    version: int | None = None,
    checkpoint: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    on_ray: bool = False,
    wait: bool = False,
) -> None:
    """Serve until interrupted, in this process or as a Ray Serve deployment; host and port default to
    the settings. ``wait``: when following the champion and there is none yet, wait for the first one."""
    if wait and version is None and checkpoint is None:
        wait_for_champion(settings)
    host = host or settings.serve_host
    port = settings.serve_port if port is None else port
    if on_ray:
        from tacit.serving import ray_app

        with ray_connection(settings):
            ray_app.run(ray_app.application(settings, version=version, checkpoint=checkpoint), host, port)
        return
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
