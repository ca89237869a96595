"""Training runs and model versions in Postgres: what was trained, how it went, which version serves.

A version is an artifact directory plus its metrics; its ``status`` says whether the scoring service
should load it (``champion``). A version belongs to a scope: one tenant, or (``tenant`` NULL) everyone. Each
scope has at most one champion, enforced by a unique index, and promotions and rollbacks act within the
version's scope only. Every status change is a decision row with its reasons. A promotion (or rollback) announces itself twice: ``NOTIFY`` on
:data:`tacit.core.db.MODEL_EVENTS_CHANNEL` in the same transaction, so listeners hear of it exactly when it
is committed (the authoritative signal), and the same JSON on the Kafka topic ``model-events`` right after
the commit, for consumers that cannot LISTEN on Postgres (other services, audit pipelines).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tacit.core.db import (
    MODEL_EVENTS_CHANNEL,
    Lease,
    ModelDecision,
    ModelStatus,
    ModelVersion,
    RunStatus,
    TrainingRun,
)
from tacit.core.endpoints import endpoint
from tacit.core.errors import TacitError
from tacit.core.kafka import client_options
from tacit.core.settings import TacitSettings

logger = logging.getLogger(__name__)

# pg_advisory_lock key held for the whole of a training run ("tacit:training" as a 64-bit int).
TRAINING_LOCK = 0x7461636974747261
TRAINING_LEASE = "training"  # the same lock as a lease row (PgBouncer in transaction mode)
LEASE_S = 60.0


class RegistryError(TacitError):
    """A registry operation that cannot be done as asked; the message says what to do instead."""


class TrainingInProgress(TacitError):
    """Another training run holds the database lock."""


# --------------------------------------------------------------------------------------------------- runs


def start_run(engine: Engine, params: dict[str, Any], *, feedback_watermark: int = 0) -> int:
    """A ``running`` row; ``feedback_watermark`` is the newest feedback id when it started, from which the
    schedule counts new labels."""
    with Session(engine) as session, session.begin():
        run = TrainingRun(status=RunStatus.RUNNING.value, params=params, feedback_watermark=feedback_watermark)
        session.add(run)
        session.flush()
        return run.id


def update_run(engine: Engine, run_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(**values))


def finish_run(engine: Engine, run_id: int, *, status: RunStatus, **values: Any) -> None:
    update_run(engine, run_id, status=status.value, finished_at=func.now(), **values)


def last_run(engine: Engine) -> TrainingRun | None:
    with Session(engine) as session:
        return session.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(1))


@contextmanager
def training_lock(engine: Engine, *, lease: bool = False) -> Iterator[None]:
    """Hold the database-wide training lock for the block, or fail at once if another run holds it.

    A session-level advisory lock lives as long as its connection, so a crashed driver releases it too.
    Behind PgBouncer in transaction mode a session is not a connection, and such a lock would silently
    belong to whoever gets the server connection next: with ``lease``, the lock is a row in ``leases``
    instead, renewed while the block runs and taken over ``LEASE_S`` seconds after a crashed holder's last
    renewal.
    """
    if lease:
        with _training_lease(engine):
            yield
        return
    with engine.connect() as connection:
        if not connection.scalar(select(func.pg_try_advisory_lock(TRAINING_LOCK))):
            raise TrainingInProgress(
                "Another training run is in progress (it holds the database lock); wait for it to finish."
            )
        try:
            yield
        finally:
            connection.scalar(select(func.pg_advisory_unlock(TRAINING_LOCK)))


@contextmanager
def _training_lease(engine: Engine) -> Iterator[None]:
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    until = func.now() + timedelta(seconds=LEASE_S)
    take = (pg_insert(Lease).values(name=TRAINING_LEASE, holder=holder, expires_at=until)
            .on_conflict_do_update(index_elements=[Lease.name], set_={"holder": holder, "expires_at": until},
                                   where=Lease.expires_at < func.now())
            .returning(Lease.holder))
    with engine.begin() as connection:
        if connection.scalar(take) != holder:
            raise TrainingInProgress(
                "Another training run is in progress (it holds the training lease); wait for it to finish, or "
                f"for its lease to expire {LEASE_S:g}s after it stopped renewing it.")
    mine = (Lease.name == TRAINING_LEASE) & (Lease.holder == holder)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_S / 3):
            try:
                with engine.begin() as connection:
                    connection.execute(update(Lease).where(mine).values(expires_at=until))
            except Exception as error:  # noqa: BLE001 - the next renewal may succeed before expiry
                logger.warning("training lease not renewed (%s)", error)

    renewal = threading.Thread(target=renew, name="tacit-training-lease", daemon=True)
    renewal.start()
    try:
        yield
    finally:
        stop.set()
        renewal.join()
        with engine.begin() as connection:
            connection.execute(delete(Lease).where(mine))


# ----------------------------------------------------------------------------------------------- versions


def register_version(
    engine: Engine, *, run_id: int, base_model: str, artifact_uri: str, metrics: dict[str, Any],
    tenant: str | None = None,
) -> int:
    """A new ``candidate`` of ``tenant``'s scope (None: the global one); the promotion gate then promotes or
    rejects it."""
    with Session(engine) as session, session.begin():
        version = ModelVersion(
            training_run_id=run_id, tenant=tenant, base_model=base_model, artifact_uri=artifact_uri,
            status=ModelStatus.CANDIDATE.value, metrics=metrics,
        )
        session.add(version)
        session.flush()
        return version.id


def champion(engine: Engine, tenant: str | None = None) -> ModelVersion | None:
    """The champion of ``tenant``'s own scope (None: the global one), if one was promoted there. A tenant
    without one is served the global champion; that fallback is the caller's, not hidden here."""
    with Session(engine) as session:
        return session.scalar(select(ModelVersion).where(_champion_of(tenant)))


def champions(engine: Engine) -> list[ModelVersion]:
    """Every scope's champion in one query: what the scoring service follows."""
    with Session(engine) as session:
        statement = select(ModelVersion).where(ModelVersion.status == ModelStatus.CHAMPION.value)
        return list(session.scalars(statement.order_by(ModelVersion.id)))


def _in_scope(tenant: str | None) -> ColumnElement[bool]:
    return ModelVersion.tenant.is_not_distinct_from(tenant)


def _champion_of(tenant: str | None) -> ColumnElement[bool]:
    return (ModelVersion.status == ModelStatus.CHAMPION.value) & _in_scope(tenant)


def get_version(engine: Engine, version_id: int) -> ModelVersion | None:
    with Session(engine) as session:
        return session.get(ModelVersion, version_id)


def list_versions(engine: Engine) -> list[ModelVersion]:
    with Session(engine) as session:
        return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def decisions(engine: Engine, version_id: int) -> list[ModelDecision]:
    with Session(engine) as session:
        statement = select(ModelDecision).where(ModelDecision.version_id == version_id)
        return list(session.scalars(statement.order_by(ModelDecision.id)))


# -------------------------------------------------------------------------------------- status changes


def promote(engine: Engine, version_id: int, *, reason: str | Sequence[str],
            settings: TacitSettings) -> dict[str, Any]:
    """Make ``version_id`` the champion of its scope and retire that scope's previous one (another tenant's
    champion, or the global one, stays), in one transaction, and announce it; returns the promotion event."""
    with Session(engine) as session, session.begin():
        version = _locked(session, version_id)
        if version.status == ModelStatus.CHAMPION.value:
            raise RegistryError(f"Version {version_id} is already the champion.")
        _set_champion(session, version, ModelStatus.RETIRED, reason)
        event = _notify(session, version)
    _publish(settings, event)
    return event


def reject(engine: Engine, version_id: int, *, reasons: Sequence[str]) -> None:
    with Session(engine) as session, session.begin():
        version = _locked(session, version_id)
        version.status = ModelStatus.REJECTED.value
        session.add(ModelDecision(version_id=version_id, action="rejected", reasons=list(reasons)))


def rollback(engine: Engine, *, reason: str, settings: TacitSettings, tenant: str | None = None) -> dict[str, Any]:
    """Reject ``tenant``'s champion (None: the global one) and bring back the version that was champion of
    that scope before it, announced like a promotion; returns the event."""
    with Session(engine) as session, session.begin():
        previous = session.scalar(
            select(ModelVersion)
            .where(ModelVersion.status == ModelStatus.RETIRED.value, ModelVersion.promoted_at.is_not(None),
                   _in_scope(tenant))
            .order_by(ModelVersion.promoted_at.desc())
            .limit(1)
            .with_for_update()
        )
        if previous is None:
            raise RegistryError(f"No earlier champion {_scope_name(tenant)} to roll back to; promote a version "
                                "with `tacit models promote`.")
        _set_champion(session, previous, ModelStatus.REJECTED, reason)
        event = _notify(session, previous)
    _publish(settings, event)
    return event


def _locked(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id, with_for_update=True)
    if version is None:
        raise RegistryError(f"There is no model version {version_id}; `tacit models list` shows them.")
    return version


def _set_champion(
    session: Session, version: ModelVersion, previous_becomes: ModelStatus, reason: str | Sequence[str]
) -> None:
    reasons = [reason] if isinstance(reason, str) else list(reason)
    current = session.scalar(select(ModelVersion).where(_champion_of(version.tenant)).with_for_update())
    if current is not None:
        current.status = previous_becomes.value
        session.add(ModelDecision(version_id=current.id, action=previous_becomes.value,
                                  reasons=[f"replaced by version {version.id}"]))
        session.flush()  # the one-champion index checks each statement: the old one goes first
    version.status = ModelStatus.CHAMPION.value
    version.promoted_at = func.now()
    session.add(ModelDecision(version_id=version.id, action="promoted", reasons=reasons))


def _scope_name(tenant: str | None) -> str:
    return "of the global model" if tenant is None else f"of tenant {tenant!r}"


def _notify(session: Session, version: ModelVersion) -> dict[str, Any]:
    event = {"event": "promoted", "version": version.id, "artifact_uri": version.artifact_uri,
             "tenant": version.tenant}
    if session.get_bind().dialect.name == "postgresql":  # a SQLite registry has no NOTIFY: it is polled
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": MODEL_EVENTS_CHANNEL, "payload": json.dumps(event)})
    return event


async def _send(bootstrap: str, settings: TacitSettings, event: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.model_events_topic, json.dumps(event).encode(), key=b"model")
    finally:
        await producer.stop()


def _publish(settings: TacitSettings, event: dict[str, Any]) -> None:
    """Produce ``event`` to ``settings.model_events_topic``. The promotion is already committed, so a
    broker that cannot be reached is reported, not raised: the NOTIFY listeners have the event."""
    try:
        asyncio.run(_send(endpoint(settings, "kafka"), settings, event))
    except Exception as exc:  # noqa: BLE001 - any broker failure leaves the committed promotion valid
        logger.warning("Version %s is promoted, but announcing it on Kafka failed: %s", event["version"], exc)
