"""The chat-events agent: conversation window per event, then label and sink per batch.

Per event, a stream processor parses the record and updates the conversation table (Faust routes a table
write to the changelog partition of the event being processed, so this must happen while that event is
current). Per batch (``stream.take``), the candidates are labeled, dead letters are published, and
everything is written to Postgres in one transaction. ``take`` acknowledges a batch's records only when the
loop body has finished, and the body only finishes once the write succeeded (it retries with backoff), so
committed offsets never run ahead of the database.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import faust
from faust.streams import current_event

from ingest.conversations import ConversationWindow, Outcome, observe
from ingest.events import Rejection, parse_event
from ingest.privacy import Privacy
from ingest.sink import DeadLetter, PostgresSink, SinkBatch, backoff_delays
from labelers.base import Labeler
from tacit.domain import ChatEvent, FeedbackCandidate
from tacit.settings import TacitSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observed:
    """What the per-event processor hands to the batch loop: an event and its candidates, or a dead letter."""

    event: ChatEvent | None = None
    candidates: tuple[FeedbackCandidate, ...] = ()
    dead_letter: DeadLetter | None = None


def make_observer(windows: faust.Table, settings: TacitSettings):
    secret = settings.user_id_secret
    privacy = Privacy(settings.redact_pii, secret.get_secret_value().encode() if secret else None)

    def observe_record(value: bytes) -> Observed:
        message = current_event().message
        try:
            parsed = parse_event(value, message.key)
            if isinstance(parsed, Rejection):
                return Observed(dead_letter=_dead_letter(message, value, parsed.reason))
            parsed = privacy.apply(parsed)  # before the window, so neither labels nor rows see raw PII
            observation = observe(ConversationWindow.from_json(windows.get(parsed.key)), parsed,
                                  settings.conversation_window)
            if observation.outcome is Outcome.ACCEPTED:
                windows[parsed.key] = observation.window.to_json()
            return Observed(event=parsed, candidates=observation.candidates)
        except Exception as exc:  # a bug must cost one record, never the worker
            log.exception("could not process %s[%s]@%s", message.topic, message.partition, message.offset)
            return Observed(dead_letter=_dead_letter(message, value, f"internal error: {exc!r}"))

    return observe_record


def _dead_letter(message, value: bytes | None, reason: str) -> DeadLetter:
    return DeadLetter(topic=message.topic, partition=message.partition, offset=message.offset,
                      key=message.key, payload=value or b"", reason=reason)


def register_agent(app: faust.App, settings: TacitSettings, sink: PostgresSink, labeler: Labeler) -> None:
    source = app.topic(settings.chat_events_topic, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    dead_letter_topic = app.topic(settings.dead_letter_topic, key_serializer="raw",
                                  value_serializer="raw", partitions=settings.partitions)
    windows = app.Table("conversations", default=None, partitions=settings.partitions)
    observe_record = make_observer(windows, settings)

    async def write_once(batch: list[Observed]) -> None:
        loop = asyncio.get_running_loop()
        candidates = [c for item in batch for c in item.candidates]
        dead_letters = [item.dead_letter for item in batch if item.dead_letter]
        labels = await loop.run_in_executor(None, labeler.label, candidates) if candidates else []
        for letter in dead_letters:
            await dead_letter_topic.send(key=letter.key, value=letter.payload,
                                         headers={"reason": letter.reason.encode()})
        sink_batch = SinkBatch(events=[item.event for item in batch if item.event],
                               labeled=list(zip(candidates, labels, strict=True)), dead_letters=dead_letters)
        await loop.run_in_executor(None, sink.write, sink_batch)

    async def flush(batch: list[Observed]) -> None:
        """Retry until the batch is stored: returning early would let ``take`` acknowledge unsaved records."""
        for delay in backoff_delays():
            try:
                return await write_once(batch)
            except Exception as exc:  # database down, labeler endpoint down: wait, never skip ahead
                log.warning("batch of %d records not stored (%r); retrying in %.1fs", len(batch), exc, delay)
                await asyncio.sleep(delay)

    @app.agent(source, name="chat-events")
    async def process_chat_events(stream):
        stream.add_processor(observe_record)
        async for batch in stream.take(settings.sink_batch_size, within=settings.sink_batch_seconds):
            await flush(batch)
