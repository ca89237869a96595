"""The worker's Kafka topics: chat events in (raw bytes, parsed by the agent), dead letters out."""

from __future__ import annotations

import faust

from tacit.core.settings import TacitSettings


def chat_events(app: faust.App, settings: TacitSettings) -> faust.TopicT:
    """Raw bytes, keyed ``tenant:conversation``: parsing is the agent's, so a bad record becomes a dead
    letter instead of a deserialisation error inside Faust."""
    return app.topic(settings.chat_events_topic, key_type=bytes, value_type=bytes,
                     key_serializer="raw", value_serializer="raw", partitions=settings.partitions)


def dead_letters(app: faust.App, settings: TacitSettings) -> faust.TopicT:
    """The rejected records as they came, with the reason in a header."""
    return app.topic(settings.dead_letter_topic, key_serializer="raw", value_serializer="raw",
                     partitions=settings.partitions)
