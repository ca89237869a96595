"""Database models (SQLAlchemy 2) and the helpers to reach and migrate the database.

The schema changes only through Alembic migrations in ``tacit/migrations/``; these models mirror them. Every
table that the stream writes has a unique natural key so that at-least-once delivery with upserts gives
exactly-once rows.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    false,
    func,
    make_url,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tacit.core.errors import TacitError

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite numbers rows by itself only for an INTEGER primary key; its registries (tests, one machine) need it.
SerialKey = BigInteger().with_variant(Integer(), "sqlite")

# Postgres NOTIFY channel on which a promotion is announced; the scoring service LISTENs on it.
MODEL_EVENTS_CHANNEL = "tacit_model_events"


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("tenant", "conversation_id", name="uq_conversations_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[str] = mapped_column(String(256))
    user_id: Mapped[str | None] = mapped_column(String(256))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_turn: Mapped[int] = mapped_column(Integer)


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant", "conversation_id", "turn_index", name="uq_messages_key"),
        Index("ix_messages_user", "tenant", "user_id"),
        Index("ix_messages_replies_time", "tenant", "created_at", postgresql_where=text("role = 'assistant'"),
              postgresql_include=["conversation_id", "turn_index", "assistant_model"]),
        Index("ix_messages_ingested", "tenant", "ingested_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128))
    tenant: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[str] = mapped_column(String(256))
    turn_index: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(256))
    assistant_model: Mapped[str | None] = mapped_column(String(256))
    language: Mapped[str | None] = mapped_column(String(32))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


_DERIVED = "stage IN ('refined', 'filtered')"  # one label per follow-up and labeler, kept or filtered


class FeedbackRow(Base):
    """One rating of one assistant reply by one labeler at one refinement stage.

    The natural key (tenant, conversation, response turn, labeler, stage) lets a relabel or a replay
    overwrite its own earlier rating instead of adding a second one.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint(
            "tenant", "conversation_id", "response_turn", "labeler_id", "stage", name="uq_feedback_key"
        ),
        Index("ix_feedback_level", "level"),
        # the dashboard's panels (migration 0007): covering, partial indexes of the derived labels
        Index("ix_feedback_derived_reply", "tenant", "conversation_id", "response_turn",
              postgresql_include=["level"], postgresql_where=text(_DERIVED)),
        Index("ix_feedback_derived_time", "tenant", "created_at", postgresql_where=text(_DERIVED),
              postgresql_include=["labeler_id", "labeler_version", "level"]),
        Index("ix_feedback_refinement_time", "tenant", "created_at", postgresql_include=["stage", "reason"],
              postgresql_where=text("stage = 'filtered' OR reason LIKE 'mined:%'")),
        Index("ix_feedback_dissatisfied", "tenant", text("id DESC"),
              postgresql_where=text(f"level <= 2 AND {_DERIVED}")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[str] = mapped_column(String(256))
    user_id: Mapped[str | None] = mapped_column(String(256))
    query_turn: Mapped[int | None] = mapped_column(Integer)
    response_turn: Mapped[int] = mapped_column(Integer)
    followup_turn: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(SmallInteger)
    confidence: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    labeler_id: Mapped[str] = mapped_column(String(64))
    labeler_version: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32))
    probabilities: Mapped[list[float] | None] = mapped_column(JSONType)  # P(level 1..5), if the labeler has them
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SignalRow(Base):
    """A user's feedback signal on one assistant message (thumbs, reaction, regenerate, edit, copy, rating).

    No foreign key to the message: a signal may arrive before its message and must be kept, so the two are
    joined on (tenant, conversation, turn) when read. The natural key includes the signal's event id, so a
    redelivered signal is the same row and two signals on one message are two rows.
    """

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("tenant", "conversation_id", "message_turn", "event_id", name="uq_signals_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[str] = mapped_column(String(256))
    message_turn: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # the kind's own fields
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the signal's timestamp
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Lease(Base):
    """A lock held as a row, renewed by its holder and free once it expired: what stands in for a
    session-level advisory lock where connections are pooled per transaction (PgBouncer)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InstallSecret(Base):
    """A secret created with the installation (by its migration), shared by all its processes."""

    __tablename__ = "install_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


USER_ID_SECRET = "user_id_pseudonyms"


def install_secret(engine: Engine, name: str) -> bytes:
    with engine.connect() as conn:
        value = conn.scalar(select(InstallSecret.value).where(InstallSecret.name == name))
    if value is None:
        raise TacitError(f"The database has no install secret {name!r}: run `tacit db upgrade` (or "
                         "`tacit stack up`) to bring its schema to the newest migration.")
    return value


class RejectedEvent(Base):
    """A record that could not be processed, kept with its raw bytes and the reason (the dead letter)."""

    __tablename__ = "rejected_events"
    __table_args__ = (UniqueConstraint("topic", "partition", "offset", name="uq_rejected_events_source"),
                      Index("ix_rejected_events_created", "created_at"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    topic: Mapped[str] = mapped_column(String(256))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModelStatus(str, enum.Enum):
    CANDIDATE = "candidate"
    CHAMPION = "champion"
    RETIRED = "retired"
    REJECTED = "rejected"


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING.value)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    num_examples: Mapped[int | None] = mapped_column(Integer)
    ray_job_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    timings: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict, server_default="{}")
    feedback_watermark: Mapped[int | None] = mapped_column(BigInteger)  # highest feedback id it read
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        # One champion per scope (a tenant, or everyone when NULL); SQLite, where tests keep registries, too.
        Index(
            "uq_model_versions_one_champion",
            func.coalesce(text("tenant"), ""),
            unique=True,
            postgresql_where=text("status = 'champion'"),
            sqlite_where=text("status = 'champion'"),
        ),
    )

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True)  # the version number users see
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"))
    tenant: Mapped[str | None] = mapped_column(String(128))  # None: the global model, for every tenant
    base_model: Mapped[str] = mapped_column(Text)
    artifact_uri: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=ModelStatus.CANDIDATE.value)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelDecision(Base):
    """Why a version's status changed (gate verdict, manual promotion, rollback): the audit trail."""

    __tablename__ = "model_decisions"
    __table_args__ = (Index("ix_model_decisions_version", "version_id"),)

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A tenant's API key. Only a digest of the key is kept: a leaked table grants nothing."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant", "tenant"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the public part of the key
    tenant: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_only: Mapped[bool] = mapped_column(Boolean, server_default=false())  # a dashboard token


# ---------------------------------------------------------------------------------------- RLHI


class PreferencePairRow(Base):
    """A prompt with a better and a worse reply, for DPO; ``provenance`` names the labels it came from.

    The texts are a snapshot taken when the pair was built, so an export needs no join and stays the same
    when the conversation grows.
    """

    __tablename__ = "preference_pairs"
    __table_args__ = (
        UniqueConstraint("tenant", "conversation_id", "source", "rejected_turn", "chosen_turn",
                         name="uq_preference_pairs_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[str] = mapped_column(String(256))
    user_id: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(32))  # how the pair was found, e.g. "reattempt"
    rejected_turn: Mapped[int] = mapped_column(Integer)
    feedback_turn: Mapped[int] = mapped_column(Integer)
    chosen_turn: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[list[dict[str, str]]] = mapped_column(JSONType)  # [{role, content}], oldest first
    chosen: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str] = mapped_column(Text)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PersonaRow(Base):
    """A short profile of one user, rebuilt from their history by ``tacit personas build``."""

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("tenant", "user_id", name="uq_personas_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(32))
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType)
    summary: Mapped[str] = mapped_column(Text)  # what the persona section of a layout shows
    num_messages: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# A server that accepts the TCP connection and then says nothing (one starting up, a stale port) would
# otherwise hold a worker's batch forever: with the timeout it is an error, and the batch is retried.
CONNECT_TIMEOUT_S = 10


def with_driver(url: str) -> str:
    """``postgresql://`` and ``postgres://`` (the form of CloudNativePG's and most hosts' ``uri`` secrets) name
    no driver, and SQLAlchemy would pick psycopg2, which Tacit does not install: they get psycopg 3. The
    query (``sslmode``, ``sslrootcert``...) passes through to libpq unchanged."""
    return re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg://", url)


def make_engine(url: str) -> Engine:
    url = with_driver(url)
    postgres = make_url(url).get_backend_name() == "postgresql"  # tests also build SQLite engines here
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if postgres else {}
    return create_engine(url, pool_pre_ping=True, future=True, connect_args=connect_args)


def migrations_dir() -> Path:
    """The Alembic scripts, shipped inside the package and found by path (they are never imported)."""
    return Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(url: str):
    """Alembic's configuration for the database at ``url``, without an alembic.ini file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", with_driver(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema at ``url`` to the newest migration (``alembic upgrade head``)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
