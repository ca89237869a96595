"""Every panel's aggregate, one SQL statement each (SQLAlchemy Core), always scoped to one tenant.

The aggregation happens in PostgreSQL, not in Python: a panel reads a few hundred rows however many labels
the store holds, and the indexes of migration 0007 keep each statement near an index-only scan. A rated
follow-up is its *derived* row (``refined`` or ``filtered``): one per candidate and labeler, so a label is
counted once whether or not a filter left it out of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, case, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from tacit.core.db import (
    ApiKey,
    FeedbackRow,
    MessageRow,
    ModelDecision,
    ModelVersion,
    RejectedEvent,
    TrainingRun,
)
from tacit.core.domain import FILTERED, REFINED, Role, SatisfactionLevel

DERIVED = (REFINED, FILTERED)
LOW = int(SatisfactionLevel.ERROR_CORRECTION)  # levels 1-2: dissatisfied
HIGH = int(SatisfactionLevel.POSITIVE_ENGAGEMENT)  # levels 4-5: satisfied
UNKNOWN_MODEL = "(unknown)"

Reply = aliased(MessageRow, name="reply")
FollowupMessage = aliased(MessageRow, name="followup")


@dataclass(frozen=True)
class Window:
    """What a panel shows: one tenant, replies in [start, end), optionally of one assistant model."""

    tenant: str
    start: datetime
    end: datetime
    model: str | None = None

    @property
    def last_day(self) -> date:
        """The last day shown, for a range ending at midnight."""
        return (self.end - timedelta(microseconds=1)).date()


def _answered(window: Window) -> list[Any]:
    """Join and filter of rated follow-ups with the reply they answer, in the window (by the reply's time)."""
    conditions = [
        FeedbackRow.tenant == window.tenant, FeedbackRow.stage.in_(DERIVED),
        Reply.tenant == FeedbackRow.tenant, Reply.conversation_id == FeedbackRow.conversation_id,
        Reply.turn_index == FeedbackRow.response_turn, Reply.role == Role.ASSISTANT.value,
        Reply.created_at >= window.start, Reply.created_at < window.end,
    ]
    if window.model is not None:
        conditions.append(_model() == window.model)
    return conditions


def _model() -> Any:
    return func.coalesce(Reply.assistant_model, UNKNOWN_MODEL)


def _counts() -> list[Any]:
    level = FeedbackRow.level
    return [func.count().label("n"), func.avg(level).label("mean_level"),
            func.count().filter(level <= LOW).label("low"), func.count().filter(level >= HIGH).label("high")]


def satisfaction_daily(conn: Connection, window: Window) -> list[Row]:
    """Per UTC day and assistant model: labels, mean level, and how many were 1-2 and 4-5."""
    day = func.date_trunc("day", Reply.created_at, "UTC").label("day")
    model = _model().label("model")
    query = (select(day, model, *_counts()).select_from(FeedbackRow).join(Reply, and_(*_answered(window)))
             .group_by(day, model).order_by(day, model))
    return list(conn.execute(query))


def dissatisfied_by_model(conn: Connection, window: Window) -> list[Row]:
    """Per assistant model: labels and dissatisfied (1-2) ones in the window; what alerts compare."""
    model = _model().label("model")
    query = (select(model, func.count().label("n"), func.count().filter(FeedbackRow.level <= LOW).label("low"))
             .select_from(FeedbackRow).join(Reply, and_(*_answered(window))).group_by(model).order_by(model))
    return list(conn.execute(query))


def promotions(conn: Connection, start: datetime, end: datetime) -> list[Row]:
    """Every promotion of a model version in the range (the registry is shared by all tenants)."""
    query = (select(ModelDecision.version_id, ModelDecision.created_at).where(
        ModelDecision.action == "promoted", ModelDecision.created_at >= start, ModelDecision.created_at < end)
        .order_by(ModelDecision.created_at))
    return list(conn.execute(query))


def label_mix(conn: Connection, window: Window) -> list[Row]:
    """Labels per labeler, labeler version and level, by the time they were labeled."""
    keys = (FeedbackRow.labeler_id, FeedbackRow.labeler_version, FeedbackRow.level)
    query = (select(*keys, func.count().label("n")).where(*_labeled(window)).group_by(*keys).order_by(*keys))
    return list(conn.execute(query))


def _labeled(window: Window) -> list[Any]:
    return [FeedbackRow.tenant == window.tenant, FeedbackRow.stage.in_(DERIVED),
            FeedbackRow.created_at >= window.start, FeedbackRow.created_at < window.end]


def refinement_reasons(conn: Connection, window: Window) -> list[Row]:
    """Filtered and mined labels by reason (the reason's first clause), with the total they are a share of."""
    mined = FeedbackRow.reason.like("mined:%")
    kind = case((FeedbackRow.stage == FILTERED, literal(FILTERED)), else_=literal("mined")).label("kind")
    reason = case((mined, literal("mined")), else_=func.split_part(FeedbackRow.reason, ";", 1)).label("reason")
    total = select(func.count()).where(*_labeled(window)).scalar_subquery().label("total")
    query = (select(kind, reason, func.count().label("n"), total)
             .where(*_labeled(window), (FeedbackRow.stage == FILTERED) | mined)
             .group_by(kind, reason).order_by(func.count().desc()))
    return list(conn.execute(query))


def dissatisfied_followups(conn: Connection, tenant: str, *, before: int | None = None, limit: int = 20,
                           model: str | None = None, feedback_id: int | None = None) -> list[Row]:
    """The newest dissatisfied follow-ups (level 1-2) with the reply they answer, as stored (redacted);
    paged by id (``before``), so that a page's link shows the same items however many arrive later."""
    query = (
        select(FeedbackRow.id, FeedbackRow.level, FeedbackRow.reason, FollowupMessage.created_at,
               FeedbackRow.conversation_id, FeedbackRow.response_turn, FeedbackRow.labeler_id,
               Reply.content.label("reply"), _model().label("model"), FollowupMessage.content.label("followup"))
        .select_from(FeedbackRow)
        .join(Reply, and_(Reply.tenant == FeedbackRow.tenant, Reply.conversation_id == FeedbackRow.conversation_id,
                          Reply.turn_index == FeedbackRow.response_turn))
        .join(FollowupMessage, and_(FollowupMessage.tenant == FeedbackRow.tenant,
                                    FollowupMessage.conversation_id == FeedbackRow.conversation_id,
                                    FollowupMessage.turn_index == FeedbackRow.followup_turn))
        .where(FeedbackRow.tenant == tenant, FeedbackRow.stage.in_(DERIVED), FeedbackRow.level <= LOW)
        .order_by(FeedbackRow.id.desc()).limit(limit)
    )
    if before is not None:
        query = query.where(FeedbackRow.id < before)
    if model is not None:
        query = query.where(_model() == model)
    if feedback_id is not None:
        query = query.where(FeedbackRow.id == feedback_id)
    return list(conn.execute(query))


def _models_of(tenant: str) -> ColumnElement[bool]:
    """The global model's versions, which every tenant may be served, and the tenant's own; another
    tenant's models are that tenant's business."""
    return ModelVersion.tenant.is_(None) | (ModelVersion.tenant == tenant)


def model_versions(conn: Connection, tenant: str) -> list[Row]:
    """The versions ``tenant`` may see, with their training run's status, newest first."""
    query = (select(ModelVersion.id, ModelVersion.tenant, ModelVersion.status, ModelVersion.base_model,
                    ModelVersion.metrics, ModelVersion.created_at, ModelVersion.promoted_at,
                    TrainingRun.status.label("run_status"), TrainingRun.num_examples)
             .outerjoin(TrainingRun, TrainingRun.id == ModelVersion.training_run_id)
             .where(_models_of(tenant))
             .order_by(ModelVersion.id.desc()))
    return list(conn.execute(query))


def model_decisions(conn: Connection, tenant: str, limit: int = 50) -> list[Row]:
    """The newest status changes of the versions ``tenant`` may see, with their reasons: the champions'
    history."""
    query = (select(ModelDecision.version_id, ModelDecision.action, ModelDecision.reasons, ModelDecision.created_at)
             .join(ModelVersion, ModelVersion.id == ModelDecision.version_id)
             .where(_models_of(tenant))
             .order_by(ModelDecision.id.desc()).limit(limit))
    return list(conn.execute(query))


def training_runs(conn: Connection, limit: int = 20) -> list[Row]:
    query = (select(TrainingRun.id, TrainingRun.status, TrainingRun.num_examples, TrainingRun.error,
                    TrainingRun.started_at, TrainingRun.finished_at)
             .order_by(TrainingRun.id.desc()).limit(limit))
    return list(conn.execute(query))


def messages_stored(conn: Connection, tenant: str, since: datetime) -> int:
    """A tenant's messages stored by the workers since a time: its events per second, from the store."""
    return conn.scalar(select(func.count()).where(MessageRow.tenant == tenant, MessageRow.ingested_at >= since))


def dead_letters(conn: Connection, since: datetime) -> list[Row]:
    """Dead letters by reason since a time: counts only, since a dead letter's tenant is not known."""
    query = (select(RejectedEvent.reason, func.count().label("n"), func.max(RejectedEvent.created_at).label("last"))
             .where(RejectedEvent.created_at >= since).group_by(RejectedEvent.reason)
             .order_by(func.count().desc()))
    return list(conn.execute(query))


def tenants(conn: Connection) -> list[str]:
    """Tenants that hold a key: the ones whose alerts are checked."""
    return list(conn.scalars(select(ApiKey.tenant).where(ApiKey.revoked_at.is_(None)).distinct()))
