"""Topics: created with the configured replication, or left to the platform and then required to exist."""

from __future__ import annotations

import uuid

import pytest

from tacit.core.endpoints import Endpoints
from tacit.core.errors import TacitError
from tacit.core.kafka import ensure_topics
from tacit.core.settings import TacitSettings

pytestmark = pytest.mark.integration


def private(settings: TacitSettings, **changes) -> TacitSettings:
    """Topic names of this test alone, so that nothing another test created hides a missing one."""
    prefix = f"topics-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={"chat_events_topic": f"{prefix}-events", "dead_letter_topic": f"{prefix}-dlq",
                                       "model_events_topic": f"{prefix}-models", "worker_app_id": prefix, **changes})


def test_topics_left_to_the_platform_must_exist(embedded_stack: Endpoints, settings: TacitSettings) -> None:
    platform = private(settings, kafka_create_topics=False)

    with pytest.raises(TacitError, match=f"Missing Kafka topics {platform.chat_events_topic}, .*KafkaTopic"):
        ensure_topics(embedded_stack.kafka_bootstrap, platform)

    created = ensure_topics(embedded_stack.kafka_bootstrap, platform.model_copy(update={"kafka_create_topics": True}))
    assert platform.chat_events_topic in created
    assert ensure_topics(embedded_stack.kafka_bootstrap, platform) == []  # now they exist: nothing to say
