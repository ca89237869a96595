"""The dashboard's FastAPI app, its alert monitor, and ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tacit.core.api_auth import rate_limiter
from tacit.core.apikeys import KeyVerifier
from tacit.core.db import make_engine
from tacit.core.endpoints import StackError, endpoint
from tacit.core.settings import TacitSettings
from tacit.dashboard import queries, routes
from tacit.dashboard.alerts import AlertGauges, Monitor

log = logging.getLogger(__name__)


def create_app(settings: TacitSettings, engine: Engine, bootstrap: str | None = None) -> FastAPI:
    """The app on ``engine``; ``bootstrap`` is Kafka's address for the lag panel (None: no lag panel)."""
    registry = CollectorRegistry()
    monitor = Monitor(settings, AlertGauges(registry))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(watch(monitor, engine, settings.dashboard_alert_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="Tacit dashboard", lifespan=lifespan)
    app.state.settings, app.state.engine, app.state.bootstrap = settings, engine, bootstrap
    app.state.registry, app.state.monitor = registry, monitor
    app.state.api_keys = KeyVerifier(engine, settings.api_key_cache_s)
    app.state.rate_limiter = rate_limiter(settings.api_rate_per_second, settings.api_rate_burst, registry)
    app.add_exception_handler(HTTPException, sign_in_page)
    for router in routes.ROUTERS:
        app.include_router(router)
    return app


async def sign_in_page(request: Request, error: HTTPException) -> Response:
    """A browser refused for its key gets the sign-in form, with the same status; a script gets JSON."""
    if error.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
        then = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return routes.login_page(request, error.detail, error.status_code, then=then)
    return await http_exception_handler(request, error)


async def watch(monitor: Monitor, engine: Engine, interval_s: float) -> None:
    """Check every tenant's alerts every ``interval_s`` seconds; a failed check is logged and retried next time."""
    while True:
        try:
            await asyncio.to_thread(check_all, monitor, engine)
        except Exception:  # the monitor must outlive a database restart
            log.exception("satisfaction alert check failed; retrying in %.0fs", interval_s)
        await asyncio.sleep(interval_s)


def check_all(monitor: Monitor, engine: Engine) -> None:
    with engine.connect() as conn:
        monitor.run_once(conn, queries.tenants(conn), datetime.now(UTC))


def kafka(settings: TacitSettings) -> str | None:
    """Kafka's address for the lag panel; without one every other panel still works, so it is not an error."""
    try:
        return endpoint(settings, "kafka")
    except StackError:
        log.warning("no Kafka (set TACIT_KAFKA_BOOTSTRAP): the operations page shows no lag")
        return None


def serve(settings: TacitSettings, host: str | None = None, port: int | None = None) -> None:
    """Serve the dashboard until interrupted; host and port default to the settings."""
    engine = make_engine(endpoint(settings, "postgres"))
    app = create_app(settings, engine, kafka(settings))
    uvicorn.run(app, host=host or settings.dashboard_host,
                port=settings.dashboard_port if port is None else port)
