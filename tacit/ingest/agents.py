"""The chat-events agent: conversation window per event, then label and sink per batch.

Per event, a stream processor parses the record and updates the conversation table (Faust routes a table
write to the changelog partition of the event being processed, so this must happen while that event is
current). Per batch (``stream.take``), the candidates are labeled and refined, dead letters are published,
and everything is written to Postgres in one transaction. Implicit-feedback mining decides waiting neutral
items in the batch loop from PostgreSQL state, never from the table (see ``tacit.refine.mining``): a table write
there would land in the changelog partition of whatever event happens to be current. ``take`` acknowledges
a batch's records only when the loop body has finished, and the body only finishes once the write
succeeded (it retries with backoff), so committed offsets never run ahead of the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import faust
from faust.streams import current_event
from faust.types import TP

from tacit.core.conversations import ConversationWindow, Outcome, observe
from tacit.core.domain import PENDING, ChatEvent, FeedbackCandidate, Label, Stored
from tacit.core.privacy import Privacy
from tacit.core.settings import TacitSettings
from tacit.ingest.events import Rejection, parse_event, storable_reason
from tacit.ingest.metrics import WorkerMetrics
from tacit.ingest.sink import DeadLetter, PostgresSink, SinkBatch, backoff_delays
from tacit.labels.base import Labeler
from tacit.refine.mining import Miner
from tacit.refine.pipeline import get_validator, with_refinements
from tacit.refine.refusal import RefusalValidator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observed:
    """What the per-event processor hands to the batch loop: an event and its candidates, or a dead letter."""

    partition: int
    offset: int
    event: ChatEvent | None = None
    candidates: tuple[FeedbackCandidate, ...] = ()
    dead_letter: DeadLetter | None = None


def make_observer(windows: faust.Table, settings: TacitSettings, metrics: WorkerMetrics):
    secret = settings.user_id_secret
    privacy = Privacy(settings.redact_pii, secret.get_secret_value().encode() if secret else None)

    def observe_record(value: bytes) -> Observed:
        message = current_event().message
        metrics.events_in.inc()
        try:
            parsed = parse_event(value, message.key)
            if isinstance(parsed, Rejection):
                return _rejected(message, value, parsed.reason, metrics)
            parsed = privacy.apply(parsed)  # before the window, so neither labels nor rows see raw PII
            observation = observe(ConversationWindow.from_json(windows.get(parsed.key)), parsed,
                                  settings.conversation_window)
            if observation.outcome is Outcome.ACCEPTED:
                windows[parsed.key] = observation.window.to_json()
            metrics.candidates.inc(len(observation.candidates))
            return Observed(message.partition, message.offset, event=parsed, candidates=observation.candidates)
        except Exception as exc:  # a bug must cost one record, never the worker
            log.exception("could not process %s[%s]@%s", message.topic, message.partition, message.offset)
            return _rejected(message, value, f"internal error: {exc!r}", metrics)

    return observe_record


def _rejected(message, value: bytes | None, reason: str, metrics: WorkerMetrics) -> Observed:
    metrics.rejected.inc()
    letter = DeadLetter(topic=message.topic, partition=message.partition, offset=message.offset,
                        key=message.key, payload=value or b"", reason=storable_reason(reason))
    return Observed(message.partition, message.offset, dead_letter=letter)


def refine_and_mine(sink: PostgresSink, miner: Miner | None, validator: RefusalValidator,
                    candidates: list[FeedbackCandidate], labels: list[Label]) -> tuple[list[tuple[FeedbackCandidate, Label]], list[tuple[Stored, Label]]]:
    """The rows to store (raw, then refined, filtered or pending), and the stored pending items now decided.

    Blocking (a query, the refusal validator's LLM if configured, and for a positive later follow-up,
    embeddings): the agent runs it in an executor.
    """
    pairs = with_refinements(candidates, labels, validator)
    if miner is None or not candidates:
        return pairs, []
    stored, known = sink.pending({(c.tenant, c.conversation_id) for c in candidates})
    pairs, decided = miner.mine_batch(pairs, stored, known)
    return pairs, [(item, label) for item, label in zip(stored, decided) if label.stage != PENDING]


def register_agent(app: faust.App, settings: TacitSettings, sink: PostgresSink, labeler: Labeler,
                   metrics: WorkerMetrics, miner: Miner | None) -> None:
    source = app.topic(settings.chat_events_topic, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    dead_letter_topic = app.topic(settings.dead_letter_topic, key_serializer="raw",
                                  value_serializer="raw", partitions=settings.partitions)
    windows = app.Table("conversations", default=None, partitions=settings.partitions)
    observe_record = make_observer(windows, settings, metrics)
    validator = get_validator(settings)

    async def write_once(batch: list[Observed]) -> list[Label]:
        loop = asyncio.get_running_loop()
        candidates = [c for item in batch for c in item.candidates]
        dead_letters = [item.dead_letter for item in batch if item.dead_letter]
        labels = await loop.run_in_executor(None, labeler.label, candidates) if candidates else []
        for letter in dead_letters:
            await dead_letter_topic.send(key=letter.key, value=letter.payload,
                                         headers={"reason": letter.reason.encode()})
        labeled, finalised = await loop.run_in_executor(None, refine_and_mine, sink, miner, validator, candidates,
                                                       labels)
        sink_batch = SinkBatch(events=[item.event for item in batch if item.event], labeled=labeled,
                               dead_letters=dead_letters, finalised=finalised)
        await loop.run_in_executor(None, sink.write, sink_batch)
        return labels

    async def flush(batch: list[Observed]) -> list[Label]:
        """Retry until the batch is stored: returning early would let ``take`` acknowledge unsaved records."""
        delays = backoff_delays()
        while True:
            try:
                return await write_once(batch)
            except Exception as exc:  # database down, labeler endpoint down: wait, never skip ahead
                delay = next(delays)
                metrics.sink_retries.inc()
                log.warning("batch of %d records not stored (%r); retrying in %.1fs", len(batch), exc, delay)
                await asyncio.sleep(delay)

    def record_stored(batch: list[Observed], labels: list[Label], seconds: float) -> None:
        metrics.sink_seconds.observe(seconds)
        for label in labels:
            metrics.labeled.labels(level=str(int(label.level))).inc()
        last_offsets = {item.partition: item.offset for item in batch}
        for partition, offset in last_offsets.items():
            highwater = app.consumer.highwater(TP(settings.chat_events_topic, partition))
            if highwater is not None:
                metrics.lag.labels(partition=str(partition)).set(max(highwater - offset - 1, 0))

    if miner is not None:
        @app.task
        async def load_mining_encoder() -> None:
            """Load MiniLM while the worker joins its group: the first batch would otherwise wait seconds."""
            await asyncio.get_running_loop().run_in_executor(None, lambda: miner.encoder)

        @app.timer(interval=miner.idle_seconds / 4)
        async def finalise_idle_conversations() -> None:
            """Pending items of quiet conversations become refined; a failure waits for the next tick."""
            try:
                loop = asyncio.get_running_loop()
                count = await loop.run_in_executor(None, sink.finalise_idle, miner.idle_seconds)
            except Exception as exc:  # database down: the next tick tries again
                log.warning("pending items of idle conversations not finalised (%r)", exc)
                return
            if count:
                log.info("finalised %d pending items of idle conversations", count)

    @app.agent(source, name="chat-events")
    async def process_chat_events(stream):
        stream.add_processor(observe_record)
        async for batch in stream.take(settings.sink_batch_size, within=settings.sink_batch_seconds):
            started = time.perf_counter()
            labels = await flush(batch)
            record_stored(batch, labels, time.perf_counter() - started)
