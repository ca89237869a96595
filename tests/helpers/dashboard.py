"""Chat logs for the dashboard's tests: two assistant models over two days, one of which is corrected far more
often in the last hours, a tenant of its own for the separation tests, and a few filtered items."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tacit.core import registry
from tacit.core.db import FeedbackRow, RejectedEvent, RunStatus
from tacit.core.settings import TacitSettings

PRAISE = "Thank you so much, that solved it!"
CORRECTION = "That's wrong, you forgot the second step."
REPLY = "Mix flour, water, salt and yeast, knead the dough, let it proof for an hour, then bake it."
SECOND_REPLY = "Glad to help. Is there anything else about baking you would like to know?"
RIVAL_FOLLOWUP = "No, that is not what I asked for at all."
ACME_LABELS, RIVAL_LABELS = 2 * (4 * 20 + 5), 2 * 10
EXPECTED_LABELS = ACME_LABELS + RIVAL_LABELS


@dataclass(frozen=True)
class DashboardStore:
    settings: TacitSettings
    engine: Engine
    keys: dict[str, str]  # tenant -> its API key
    now: datetime  # what the logs' times are relative to


def conversation(name: str, model: str, when: datetime, followups: tuple[str, str],
                 query: str = "How do I bake a good loaf of bread at home?") -> dict:
    """Five messages a minute apart: two replies of ``model``, each answered by one of ``followups``."""
    texts = [query, REPLY, followups[0], SECOND_REPLY, followups[1]]
    roles = ["user", "assistant", "user", "assistant", "user"]
    messages = [{"role": role, "content": text, "timestamp": (when + timedelta(minutes=i)).isoformat()}
                for i, (role, text) in enumerate(zip(roles, texts, strict=True))]
    return {"conversation_id": name, "user_id": f"user-{name}", "model": model, "messages": messages}


def acme_logs(path: Path, now: datetime, per_group: int = 20) -> Path:
    """The previous window (36 h ago): both models corrected half the time. The current one (6 h ago):
    model-a still half the time, model-b every time. Plus five image requests, which a filter leaves out."""
    before, recent = now - timedelta(hours=36), now - timedelta(hours=6)
    half = (CORRECTION, PRAISE)
    records = []
    for i in range(per_group):
        records += [conversation(f"a-old-{i}", "model-a", before, half),
                    conversation(f"b-old-{i}", "model-b", before, half),
                    conversation(f"a-new-{i}", "model-a", recent, half),
                    conversation(f"b-new-{i}", "model-b", recent, (CORRECTION, CORRECTION))]
    records += [conversation(f"image-{i}", "model-a", recent, half,
                             query="Please generate an image of a cat sitting on a bread loaf.") for i in range(5)]
    return _write(path, records)


def rival_logs(path: Path, now: datetime, count: int = 10) -> Path:
    records = [conversation(f"rival-{i}", "rival-model", now - timedelta(hours=3), (RIVAL_FOLLOWUP, PRAISE))
               for i in range(count)]
    return _write(path, records)


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def now() -> datetime:
    return datetime.now(UTC)


def stored(engine: Engine) -> tuple[int, int]:
    """Derived labels and dead letters in the store."""
    with engine.connect() as conn:
        labels = conn.scalar(select(func.count()).where(FeedbackRow.stage.in_(("refined", "filtered"))))
        return labels, conn.scalar(select(func.count()).select_from(RejectedEvent))


def reliability(confidences: tuple[float, ...], gap: float) -> list[dict[str, float]]:
    return [{"low": c - 0.05, "high": c + 0.05, "count": 40, "confidence": c, "accuracy": max(0.0, c - gap)}
            for c in confidences]


def register_versions(engine: Engine, settings: TacitSettings) -> list[int]:
    """Two trained versions, each promoted in turn through the registry, and a failed run."""
    versions = []
    for accuracy, gap in ((0.52, 0.15), (0.61, 0.04)):
        run = registry.start_run(engine, {"steps": 6})
        registry.finish_run(engine, run, status=RunStatus.SUCCEEDED, num_examples=170)
        metrics = {"accuracy": accuracy, "mae": 0.6, "qwk": 0.4, "ece": gap, "roc_auc": 0.7,
                   "pairwise_hh": accuracy + 0.05, "reliability": reliability((0.35, 0.55, 0.75, 0.9), gap)}
        version = registry.register_version(engine, run_id=run, base_model="all-MiniLM-L6-v2",
                                            artifact_uri=f"/models/run-{run}", metrics=metrics)
        registry.promote(engine, version, reason="passed the gate", settings=settings)
        versions.append(version)
    failed = registry.start_run(engine, {"steps": 6})
    registry.finish_run(engine, failed, status=RunStatus.FAILED, error="no labels in the refined stage")
    return versions
