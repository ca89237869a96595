"""The commands on the store (``db``, ``keys``, ``models``) and what every stage's commands share.

Each stage owns a Typer app in its own ``cli.py`` and :mod:`tacit.cli` composes them. The commands import
their stage's modules inside their bodies, so that ``tacit --help`` stays fast, and get the settings and the
components' endpoints from the :class:`Wiring` on the click context (the process's settings unless the caller
gives its own).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tacit.core.endpoints import endpoint
from tacit.core.settings import TacitSettings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from tacit.core.apikeys import StoredKey
    from tacit.core.db import ModelVersion

console = Console(stderr=True)
TenantOption = Annotated[str | None, typer.Option(help="Only this tenant (default: all).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts), not a table.")]

app = typer.Typer()
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Per-tenant API keys of the gateway and the scoring service.", no_args_is_help=True)
models_app = typer.Typer(help="Model versions: list, inspect, promote, roll back.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")


class Wiring:
    """Where a command gets its settings and the components' endpoints: the process's settings, or the
    ones given. A caller that runs the app (a test, an embedding program) passes its own as click's ``obj``:
    ``CliRunner().invoke(app, args, obj=Wiring(settings))``.
    """

    def __init__(self, settings: TacitSettings | None = None) -> None:
        self._settings = settings

    def settings(self) -> TacitSettings:
        return self._settings or get_settings()

    def endpoint(self, component: str) -> str:
        return endpoint(self.settings(), component)

    def engine(self) -> Engine:
        """An engine on the configured or embedded PostgreSQL."""
        from tacit.core.db import make_engine

        return make_engine(self.endpoint("postgres"))

    def print_version(self, version_id: int, *, details: bool = False) -> None:
        print_version(self.engine(), version_id, details=details)


def wiring(ctx: typer.Context) -> Wiring:
    """The wiring the caller put on the context, else the process's settings."""
    return ctx.find_object(Wiring) or Wiring()


def echo_json(value: Any) -> None:
    """``value`` as JSON on stdout, without rich's markup or wrapping."""
    typer.echo(json.dumps(value, indent=2, default=str))


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the Alembic migrations to the configured or embedded database."""
    from tacit.core import db

    db.upgrade(wiring(ctx).endpoint("postgres"))
    console.print("schema at the newest migration")


# -------------------------------------------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant this key writes and scores for.")],
    name: Annotated[str | None, typer.Option(help="What the key is for, shown by `tacit keys list`.")] = None,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="A dashboard token: signs in to `tacit dashboard`, refused by the gateway and "
        "the scoring service.")] = False,
) -> None:
    """Make a key and print it (on stdout) once: only its hash is stored."""
    from tacit.core import apikeys

    stored, key = apikeys.create(wiring(ctx).engine(), tenant, name, read_only=read_only)
    kind = "read-only dashboard token" if read_only else "key"
    console.print(f"{kind} {stored.id} of tenant {stored.tenant}; keep it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every key's id, tenant, name and dates; never the keys themselves."""
    from rich.table import Table

    from tacit.core import apikeys

    keys = apikeys.list_keys(wiring(ctx).engine(), tenant)
    if as_json:
        echo_json(keys_json(keys))
        return
    table = Table("id", "tenant", "name", "access", "created", "revoked")
    for key in keys:
        table.add_row(key.id, key.tenant, key.name or "", "read-only" if key.read_only else "full",
                      f"{key.created_at:%Y-%m-%d %H:%M}",
                      f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "")
    Console().print(table)


def keys_json(keys: Iterable[StoredKey]) -> list[dict[str, Any]]:
    """The keys as `keys list --json` prints them: ids, tenants, names and ISO times, never a key or hash."""
    return [{"id": key.id, "tenant": key.tenant, "name": key.name, "read_only": key.read_only,
             "created_at": _time(key.created_at),
             "revoked_at": _time(key.revoked_at)} for key in keys]


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (from `tacit keys list`).")],
) -> None:
    """Revoke a key: refused everywhere within TACIT_API_KEY_CACHE_S seconds."""
    from tacit.core import apikeys

    key = apikeys.revoke(wiring(ctx).engine(), key_id)
    console.print(f"key {key.id} of tenant {key.tenant} revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S}")


# ------------------------------------------------------------------------------------------------ models


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every model version with its scope, status and headline metrics."""
    from rich.table import Column, Table

    from tacit.core.registry import list_versions

    versions = list_versions(wiring(ctx).engine())
    if as_json:
        echo_json(versions_json(versions))
        return
    status = Column("status", no_wrap=True)  # the column that matters most, whole in a narrow terminal
    table = Table("version", "tenant", status, "created", "promoted", "holdout qwk", "holdout ece", "pairwise")
    for version in versions:
        metrics = version.metrics
        pairwise = ", ".join(f"{k[9:]} {v:.3f}" for k, v in metrics.items() if k.startswith("pairwise_"))
        table.add_row(str(version.id), scope(version.tenant), version.status, f"{version.created_at:%Y-%m-%d %H:%M}",
                      f"{version.promoted_at:%Y-%m-%d %H:%M}" if version.promoted_at else "",
                      number(metrics.get("holdout_qwk")), number(metrics.get("holdout_ece")), pairwise)
    Console().print(table)


def scope(tenant: str | None) -> str:
    """How a version's scope is shown: its tenant, or "(global)" for the model every tenant falls back to."""
    return "(global)" if tenant is None else tenant


def _of_tenant(tenant: str | None) -> str:
    return "" if tenant is None else f" of tenant {tenant}"


def versions_json(versions: Iterable[ModelVersion]) -> list[dict[str, Any]]:
    """The versions as `models list --json` prints them: status, artifact, ISO times and every metric."""
    return [{"version": version.id, "tenant": version.tenant, "status": version.status, "base_model": version.base_model,
             "artifact_uri": version.artifact_uri, "training_run_id": version.training_run_id,
             "created_at": _time(version.created_at), "promoted_at": _time(version.promoted_at),
             "metrics": version.metrics} for version in versions]


@models_app.command("show")
def models_show(ctx: typer.Context, version: Annotated[int, typer.Argument(help="Version number.")]) -> None:
    """A version's artifact, every metric, its reliability table, margin curves and decision history."""
    wiring(ctx).print_version(version, details=True)


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "promoted by hand",
) -> None:
    """Make a version the champion of its scope (its tenant's, or the global one; the previous champion
    there is retired) and announce it."""
    from tacit.core import registry

    wired = wiring(ctx)
    event = registry.promote(wired.engine(), version, reason=reason, settings=wired.settings())
    console.print(f"version {version} is the champion{_of_tenant(event['tenant'])}")


@models_app.command("rollback")
def models_rollback(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "rolled back by hand",
    tenant: Annotated[str | None, typer.Option(help="Roll back this tenant's own champion (default: the global one).")] = None,
) -> None:
    """Reject the champion of a scope and bring back its previous one, announced like a promotion."""
    from tacit.core import registry

    wired = wiring(ctx)
    event = registry.rollback(wired.engine(), reason=reason, settings=wired.settings(), tenant=tenant)
    console.print(f"version {event['version']} is the champion{_of_tenant(tenant)} again")


def print_version(engine: Engine, version_id: int, *, details: bool = False) -> None:
    """A version's status, artifact and metrics (with ``details``, its tables too) and its decisions."""
    from tacit.core.registry import RegistryError, decisions, get_version

    version = get_version(engine, version_id)
    if version is None:
        raise RegistryError(f"There is no model version {version_id}; `tacit models list` shows them.")
    out = Console()
    out.print(f"[bold]version {version.id}[/bold] ({scope(version.tenant)}): {version.status}, {version.artifact_uri}")
    for name, value in version.metrics.items():
        if isinstance(value, (int, float)):
            out.print(f"  {name:32s} {value:.4f}" if isinstance(value, float) else f"  {name:32s} {value}")
        elif details:
            out.print(f"  {name}:")
            for row in value:
                out.print("    " + "  ".join(f"{k} {number(v) if isinstance(v, float) else v}" for k, v in row.items()))
    for decision in decisions(engine, version.id):
        out.print(f"  {decision.created_at:%Y-%m-%d %H:%M:%S} {decision.action}: " + "; ".join(decision.reasons))
    engine.dispose()
