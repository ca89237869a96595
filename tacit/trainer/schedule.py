"""Retrain on a schedule: on a cron expression, and/or once enough new labels have arrived.

The scheduler only decides *when*; ``run_training`` takes the database lock, so a scheduled run, a manual
``tacit train`` and a second scheduler never train at once. A run that fails (too few labels, a crash)
still moves the label watermark, so a failing trigger waits for new data instead of retrying in a loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tacit.core.db import FeedbackRow
from tacit.core.domain import REFINED
from tacit.core.errors import TacitError
from tacit.core.registry import last_run

logger = logging.getLogger(__name__)


class ScheduleError(TacitError):
    """The schedule cannot be used as configured."""


@dataclass(frozen=True)
class Schedule:
    cron: str | None = None
    min_new_labels: int | None = None

    def __post_init__(self) -> None:
        if self.cron is None and self.min_new_labels is None:
            raise ScheduleError(
                "Nothing to schedule on: give --cron (TACIT_SCHEDULE_CRON) and/or --min-new-labels "
                "(TACIT_SCHEDULE_MIN_NEW_LABELS)."
            )
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ScheduleError(f"{self.cron!r} is not a cron expression; try '0 3 * * *' (daily at 03:00 UTC).")


def cron_due(cron: str, since: datetime, now: datetime) -> bool:
    """Whether the expression fired after ``since`` and by ``now``."""
    return croniter(cron, since).get_next(datetime) <= now


def new_labels(engine: Engine, watermark: int) -> int:
    with engine.connect() as connection:
        # One refined (or filtered) row per follow-up besides its raw one: count what training would use.
        newer = (FeedbackRow.id > watermark) & (FeedbackRow.stage == REFINED)
        return connection.scalar(select(func.count()).where(newer))


def due(schedule: Schedule, engine: Engine, started: datetime, now: datetime) -> str | None:
    """Why a run is due now, or None. Cron counts from the last run (or from ``started``, the scheduler's
    own start, when there was none); labels count from the last run's watermark."""
    last = last_run(engine)
    if schedule.min_new_labels is not None:
        arrived = new_labels(engine, last.feedback_watermark or 0 if last else 0)
        if arrived >= schedule.min_new_labels:
            return f"{arrived} new labels (threshold {schedule.min_new_labels})"
    if schedule.cron is not None and cron_due(schedule.cron, last.started_at if last else started, now):
        return f"cron {schedule.cron!r}"
    return None


def run_schedule(
    schedule: Schedule, engine: Engine, train: Callable[[], int], *, poll_seconds: float, once: bool = False
) -> None:
    """Check every ``poll_seconds`` and call ``train`` when a run is due; ``once``: check a single time.

    Errors a user can act on (too few labels, another run in progress) are logged and the loop goes on.
    """
    started = datetime.now(UTC)
    while True:
        reason = due(schedule, engine, started, datetime.now(UTC))
        if reason is not None:
            logger.info("Training run due: %s", reason)
            try:
                logger.info("Registered model version %d", train())
            except TacitError as exc:
                logger.error("Scheduled run did not produce a model: %s", exc)
        if once:
            return
        time.sleep(poll_seconds)
