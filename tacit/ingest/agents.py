"""The chat-events agent: conversation window per event, then label and sink per batch.

Per event, a stream processor parses the record and updates the conversation's window in memory; the
changed windows go to the conversation table once per batch, each to the changelog partition of its events
(:class:`tacit.ingest.tables.Windows`). Per batch (``stream.take``), the candidates are labeled and
refined, dead letters are published, and everything is written to Postgres in one transaction.
Implicit-feedback mining decides waiting neutral items in the batch loop from PostgreSQL state, never from
the table (see ``tacit.refine.mining``). ``take`` acknowledges a batch's records only when the loop body
has finished, and the body only finishes once the write succeeded (it retries with backoff), so committed
offsets never run ahead of the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import faust
from faust.streams import current_event
from faust.types import TP

from tacit.core.conversations import Outcome, candidates_from_stored, observe
from tacit.core.domain import PENDING, ChatEvent, FeedbackCandidate, Label, Message, Rated, SignalEvent, Stored
from tacit.core.privacy import Privacy
from tacit.core.settings import TacitSettings
from tacit.ingest import tables, topics
from tacit.ingest.events import Rejection, parse_event, storable_reason, with_record_id
from tacit.ingest.metrics import WorkerMetrics
from tacit.ingest.sink import DeadLetter, PostgresSink, SinkBatch, backoff_delays
from tacit.ingest.store import PendingStore
from tacit.labels.base import Labeler
from tacit.refine.mining import Miner
from tacit.refine.pipeline import get_validator, with_refinements
from tacit.refine.refusal import RefusalValidator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observed:
    """What the per-event processor hands to the batch loop: an event and its candidates, a feedback
    signal, or a dead letter."""

    partition: int
    offset: int
    event: ChatEvent | None = None
    candidates: tuple[FeedbackCandidate, ...] = ()
    dead_letter: DeadLetter | None = None
    signal: SignalEvent | None = None
    stale: bool = False  # too old for the window: paired from PostgreSQL in the batch stage


class Observer:
    """The per-event stream processor: parse, redact, update the conversation window, emit candidates."""

    def __init__(self, windows: tables.Windows, settings: TacitSettings, privacy: Privacy, metrics: WorkerMetrics):
        self.privacy = privacy
        self.windows = windows
        self.capacity = settings.conversation_window
        self.metrics = metrics

    def __call__(self, value: bytes) -> Observed:
        message = current_event().message
        self.metrics.events_in.inc()
        try:
            parsed = parse_event(value, message.key)
            if isinstance(parsed, Rejection):
                return _rejected(message, value, parsed.reason, self.metrics)
            parsed = self.privacy.apply(parsed)  # before the window, so neither labels nor rows see raw PII
            if isinstance(parsed, SignalEvent):  # stored as it comes; joined to its message when read
                signal = with_record_id(parsed, message.topic, message.partition, message.offset)
                return Observed(message.partition, message.offset, signal=signal)
            observation = observe(self.windows.get(parsed.key), parsed, self.capacity)
            if observation.outcome is Outcome.ACCEPTED:
                self.windows.set(parsed.key, message.partition, observation.window)
            self.metrics.candidates.inc(len(observation.candidates))
            return Observed(message.partition, message.offset, event=parsed, candidates=observation.candidates,
                            stale=observation.outcome is Outcome.STALE)
        except Exception as exc:  # a bug must cost one record, never the worker
            log.exception("could not process %s[%s]@%s", message.topic, message.partition, message.offset)
            return _rejected(message, value, f"internal error: {exc!r}", self.metrics)


def _rejected(message, value: bytes | None, reason: str, metrics: WorkerMetrics) -> Observed:
    metrics.rejected.inc()
    letter = DeadLetter(topic=message.topic, partition=message.partition, offset=message.offset,
                        key=message.key, payload=value or b"", reason=storable_reason(reason))
    return Observed(message.partition, message.offset, dead_letter=letter)


def refine_and_mine(
    store: PendingStore, miner: Miner | None, validator: RefusalValidator,
    candidates: list[FeedbackCandidate], labels: list[Label],
) -> tuple[list[Rated], list[tuple[Stored, Label]]]:
    """The rows to store (raw, then refined, filtered or pending), and the stored pending items now decided.

    Blocking (a query, the refusal validator's LLM if configured, and for a positive later follow-up,
    embeddings): the agent runs it in an executor.
    """
    pairs = with_refinements(candidates, labels, validator)
    if miner is None or not candidates:
        return pairs, []
    stored, known = store.pending({(c.tenant, c.conversation_id) for c in candidates})
    pairs, decided = miner.mine_batch(pairs, stored, known)
    return pairs, [(item, label) for item, label in zip(stored, decided) if label.stage != PENDING]


class ChatEventsAgent:
    """The agent over the chat-events topic, and with mining on, the task and timer that serve it."""

    def __init__(self, app: faust.App, settings: TacitSettings, sink: PostgresSink, store: PendingStore,
                 labeler: Labeler, privacy: Privacy, metrics: WorkerMetrics, miner: Miner | None) -> None:
        self.app, self.settings, self.sink, self.store = app, settings, sink, store
        self.labeler, self.metrics, self.miner = labeler, metrics, miner
        self.source = topics.chat_events(app, settings)
        self.dead_letter_topic = topics.dead_letters(app, settings)
        self.windows = tables.Windows(tables.conversation_windows(app, settings))
        self.observe = Observer(self.windows, settings, privacy, metrics)
        self.validator = get_validator(settings)

    def register(self) -> None:
        """Wire the agent (and with mining, the encoder task and the idle sweep) into the app."""
        self.app.agent(self.source, name="chat-events")(self.process)
        self.app.on_partitions_revoked.connect(self.windows.forget)
        if self.miner is not None:
            self.app.task(self.load_mining_encoder)
            self.app.timer(interval=self.miner.idle_seconds / 4)(self.finalise_idle_conversations)

    async def process(self, stream) -> None:
        stream.add_processor(self.observe)
        async for batch in stream.take(self.settings.sink_batch_size, within=self.settings.sink_batch_seconds):
            self.windows.write()
            started = time.perf_counter()
            labels = await self.flush(batch)
            self.record_stored(batch, labels, time.perf_counter() - started)

    async def flush(self, batch: list[Observed]) -> list[Label]:
        """Retry until the batch is stored: returning early would let ``take`` acknowledge unsaved records."""
        delays = backoff_delays()
        while True:
            try:
                return await self.write_once(batch)
            except Exception as exc:  # database down, labeler endpoint down: wait, never skip ahead
                delay = next(delays)
                self.metrics.sink_retries.inc()
                log.warning("batch of %d records not stored (%r); retrying in %.1fs", len(batch), exc, delay)
                await asyncio.sleep(delay)

    async def write_once(self, batch: list[Observed]) -> list[Label]:
        loop = asyncio.get_running_loop()
        candidates = [c for item in batch for c in item.candidates]
        if stale := [item.event for item in batch if item.stale]:
            unsaved = [item.event for item in batch if item.event]
            candidates += await loop.run_in_executor(None, self.pair_stale, stale, unsaved)
        dead_letters = [item.dead_letter for item in batch if item.dead_letter]
        labels = await loop.run_in_executor(None, self.labeler.label, candidates) if candidates else []
        for letter in dead_letters:
            await self.dead_letter_topic.send(key=letter.key, value=letter.payload,
                                              headers={"reason": letter.reason.encode()})
        labeled, finalised = await loop.run_in_executor(None, refine_and_mine, self.store, self.miner,
                                                        self.validator, candidates, labels)
        sink_batch = SinkBatch(events=[item.event for item in batch if item.event], labeled=labeled,
                               dead_letters=dead_letters, finalised=finalised,
                               signals=[item.signal for item in batch if item.signal])
        await loop.run_in_executor(None, self.sink.write, sink_batch)
        return labels

    def pair_stale(self, stale: list[ChatEvent], unsaved: list[ChatEvent]) -> list[FeedbackCandidate]:
        """Candidates of turns too old for the window, from the stored conversation and this batch's events.

        After a crash the table's changelog may hold turns whose batch never reached PostgreSQL; their
        redelivered predecessors are then stale, and without this their follow-ups would never be labeled.
        """
        conversations = self.store.around(stale, self.settings.conversation_window)
        for event in unsaved:
            if (stored := conversations.get((event.tenant, event.conversation_id))) is not None:
                stored.messages.append(Message(event.role, event.content, event.turn_index))
        candidates = []
        for event in stale:
            stored = conversations[(event.tenant, event.conversation_id)]
            candidates += candidates_from_stored(stored.messages, stored.user_id, event,
                                                 self.settings.conversation_window)
        self.metrics.candidates.inc(len(candidates))
        return candidates

    def record_stored(self, batch: list[Observed], labels: list[Label], seconds: float) -> None:
        self.metrics.sink_seconds.observe(seconds)
        for label in labels:
            self.metrics.labeled.labels(level=str(int(label.level))).inc()
        last_offsets = {item.partition: item.offset for item in batch}
        for partition, offset in last_offsets.items():
            highwater = self.app.consumer.highwater(TP(self.settings.chat_events_topic, partition))
            if highwater is not None:
                self.metrics.lag.labels(partition=str(partition)).set(max(highwater - offset - 1, 0))

    async def load_mining_encoder(self) -> None:
        """Load MiniLM while the worker joins its group: the first batch would otherwise wait seconds."""
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.miner.encoder)

    async def finalise_idle_conversations(self) -> None:
        """Pending items of quiet conversations become refined; a failure waits for the next tick."""
        try:
            loop = asyncio.get_running_loop()
            count = await loop.run_in_executor(None, self.store.finalise_idle, self.miner.idle_seconds)
        except Exception as exc:  # database down: the next tick tries again
            log.warning("pending items of idle conversations not finalised (%r)", exc)
            return
        if count:
            log.info("finalised %d pending items of idle conversations", count)
