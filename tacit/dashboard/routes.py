"""The dashboard's pages, one router per concern; every query is scoped to the signed-in key's tenant.

Model versions, training runs and dead letters are the platform's, not a tenant's: every tenant sees them
(the registry holds no tenant data; a dead letter is shown only as a count per reason, never its bytes).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from prometheus_client import generate_latest
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from tacit.dashboard import alerts, charts, queries
from tacit.dashboard.auth import COOKIE, Tenant
from tacit.dashboard.operations import PartitionLag, stream_lag
from tacit.dashboard.queries import Window

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["chart"] = charts.to_json
PAGE_SIZE = 20
DateParam = Annotated[date | None, Query(description="First day shown (UTC); default: dashboard_days ago.")]
EndParam = Annotated[date | None, Query(description="Last day shown (UTC); default: today.")]
ModelParam = Annotated[str | None, Query(description="Only this assistant model.")]


def window(request: Request, tenant: str, start: date | None, end: date | None, model: str | None) -> Window:
    """The days a page shows: [start, end] in UTC, the last ``dashboard_days`` days unless chosen."""
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=request.app.state.settings.dashboard_days - 1)
    return Window(tenant, datetime.combine(start, time(), UTC),
                  datetime.combine(end + timedelta(days=1), time(), UTC), model or None)


def render(request: Request, name: str, tenant: str, conn: Connection, **context: Any) -> HTMLResponse:
    """A page with the tenant's raised alerts as a banner above it."""
    verdicts = alerts.check(conn, tenant, datetime.now(UTC), request.app.state.settings)
    return templates.TemplateResponse(request, name, {"tenant": tenant, "page": name,
                                                      "alerts": [v for v in verdicts if v.raised], **context})


def login_page(request: Request, message: str | None = None, code: int = 200, then: str = "/") -> HTMLResponse:
    """The sign-in form; ``then`` is the page to go on to, so that a shared link survives signing in."""
    context = {"message": message, "page": "login", "then": then}
    return templates.TemplateResponse(request, "login.html", context, status_code=code)


def local(path: str) -> str:
    """``path`` if it is a page of this site, else ``/``: a sign-in must never redirect elsewhere."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


# ------------------------------------------------------------------ without a key: sign-in, assets, metrics

public = APIRouter()


@public.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return login_page(request)


@public.post("/login")
def login(request: Request, key: Annotated[str, Form()], then: Annotated[str, Form()] = "/") -> Response:
    """Check the key as every request will, then keep it in an HTTP-only cookie (same-site ``lax``, so that a
    link to a page, followed from a chat or a ticket, arrives signed in)."""
    stored = request.app.state.api_keys.lookup(key.strip())
    if stored is None or stored.revoked_at is not None:
        return login_page(request, "That key is not valid (or was revoked); `tacit keys create --tenant T` "
                          "makes one.", status.HTTP_401_UNAUTHORIZED, then)
    response = RedirectResponse(local(then), status.HTTP_303_SEE_OTHER)
    response.set_cookie(COOKIE, key.strip(), httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@public.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE)
    return response


@public.get("/static/plotly.min.js")
def plotly_js() -> Response:
    """Plotly's browser bundle from the installed plotly package: the dashboard needs no internet."""
    return Response(_plotly_js(), media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=86400"})


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@public.get("/healthz")
def healthz() -> dict[str, str]:
    """For the container's health check: the process answers (each page checks the database itself)."""
    return {"status": "ok"}


@public.get("/metrics")
def metrics(request: Request) -> Response:
    """The alert gauges, for Prometheus."""
    return Response(generate_latest(request.app.state.registry), media_type="text/plain; version=0.0.4")


# ------------------------------------------------------------------------------------ satisfaction

satisfaction = APIRouter()


@satisfaction.get("/", response_class=HTMLResponse)
def satisfaction_page(request: Request, tenant: Tenant, start: DateParam = None, end: EndParam = None,
                      model: ModelParam = None) -> HTMLResponse:
    """Daily mean level and shares per assistant model, with the reward model's promotions."""
    shown = window(request, tenant, start, end, model)
    with request.app.state.engine.connect() as conn:
        every = queries.satisfaction_daily(conn, Window(tenant, shown.start, shown.end))
        days = [row for row in every if shown.model in (None, row.model)]
        models = sorted({row.model for row in every})
        promoted = queries.promotions(conn, shown.start, shown.end)
        return render(request, "satisfaction.html", tenant, conn, window=shown, days=days, models=models,
                      figure=charts.satisfaction(days, promoted), totals=_totals(days))


def _totals(days: list[Row]) -> dict[str, float]:
    n = sum(row.n for row in days)
    return {"n": n, "low": sum(row.low for row in days), "high": sum(row.high for row in days),
            "mean": sum(float(row.mean_level) * row.n for row in days) / n if n else 0.0}


# ------------------------------------------------------------------------------------------ labels

labels = APIRouter()


@labels.get("/labels", response_class=HTMLResponse)
def labels_page(request: Request, tenant: Tenant, start: DateParam = None, end: EndParam = None) -> HTMLResponse:
    """The mix of levels per labeler version, and what refinement filtered or mined, by reason."""
    shown = window(request, tenant, start, end, None)
    with request.app.state.engine.connect() as conn:
        mix, reasons = queries.label_mix(conn, shown), queries.refinement_reasons(conn, shown)
        return render(request, "labels.html", tenant, conn, window=shown, mix=mix, reasons=reasons,
                      mix_figure=charts.label_mix(mix), reasons_figure=charts.reasons(reasons))


# --------------------------------------------------------------------------------------- follow-ups

followups = APIRouter()


@followups.get("/followups", response_class=HTMLResponse)
def followups_page(request: Request, tenant: Tenant, before: int | None = None,
                   model: ModelParam = None) -> HTMLResponse:
    """The newest dissatisfied follow-ups; ``before`` pages back, and each link stays valid."""
    with request.app.state.engine.connect() as conn:
        rows = queries.dissatisfied_followups(conn, tenant, before=before, limit=PAGE_SIZE, model=model or None)
        older = rows[-1].id if len(rows) == PAGE_SIZE else None
        return render(request, "followups.html", tenant, conn, rows=rows, older=older, model=model)


@followups.get("/followups/{feedback_id}", response_class=HTMLResponse)
def followup_page(request: Request, tenant: Tenant, feedback_id: int) -> HTMLResponse:
    with request.app.state.engine.connect() as conn:
        rows = queries.dissatisfied_followups(conn, tenant, feedback_id=feedback_id, limit=1)
        if not rows:  # another tenant's item is as absent as a missing one
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No dissatisfied follow-up {feedback_id}.")
        return render(request, "followups.html", tenant, conn, rows=rows, older=None, model=None)


# ------------------------------------------------------------------------------------------ models

models = APIRouter()
TABLE_METRICS = ("accuracy", "mae", "qwk", "ece", "roc_auc")


@models.get("/models", response_class=HTMLResponse)
def models_page(request: Request, tenant: Tenant) -> HTMLResponse:
    """Every version's metrics, the champion's history, reliability plots, and the training runs."""
    with request.app.state.engine.connect() as conn:
        versions = queries.model_versions(conn, tenant)
        return render(request, "models.html", tenant, conn, versions=versions, columns=_columns(versions),
                      decisions=queries.model_decisions(conn, tenant), runs=queries.training_runs(conn),
                      figure=charts.reliability(versions[:5]))


def _columns(versions: list[Row]) -> list[str]:
    """The scalar metrics to tabulate: the ordinal ones, then each held-out benchmark's pairwise accuracy."""
    pairwise = sorted({k for v in versions for k in (v.metrics or {}) if k.startswith("pairwise_")})
    return [*TABLE_METRICS, *pairwise]


# -------------------------------------------------------------------------------------- operations

operations = APIRouter()
RATE_WINDOW = timedelta(minutes=5)


@operations.get("/operations", response_class=HTMLResponse)
async def operations_page(request: Request, tenant: Tenant) -> HTMLResponse:
    """The tenant's messages stored per second, the workers' lag per partition, dead letters by reason."""
    state = request.app.state
    lag = await stream_lag(state.settings, state.bootstrap) if state.bootstrap else None
    return await asyncio.to_thread(_operations, request, tenant, lag)


def _operations(request: Request, tenant: str, lag: list[PartitionLag] | None) -> HTMLResponse:
    now = datetime.now(UTC)
    since = now - timedelta(days=1)
    with request.app.state.engine.connect() as conn:
        dead = queries.dead_letters(conn, since)
        stored = queries.messages_stored(conn, tenant, now - RATE_WINDOW)
        return render(request, "operations.html", tenant, conn, dead=dead, lag=lag, since=since,
                      rate=stored / RATE_WINDOW.total_seconds(), stored=stored, figure=charts.dead_letters(dead))


ROUTERS = (public, satisfaction, labels, followups, models, operations)
