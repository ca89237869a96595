"""Faust's aiokafka transport, with the fixes that keep a rebalance from losing or stalling anything.

1. True end offsets: Faust rebuilds a table by reading its changelog up to the partitions' end offsets. On
   Tansu those come back short (see :mod:`tacit.core.kafka`), and the last records of the changelog, the newest
   state of some conversations, would be silently skipped after every restart or rebalance.
2. Source partitions are read strictly in order (:class:`Positions`), and an offset is committed only once
   every record before it was processed (:meth:`Consumer.ack`, :meth:`Consumer._new_offset`).

Why 2: around a rebalance, records fetched before it keep arriving after Faust sought the partition back to
its committed offset, and the same records can arrive twice. Faust reads a jump in offsets as a hole in the
log and counts the records in between as acknowledged; it drops a re-read record as already seen once a
stale one moved its read offset; it acknowledges records its stream skipped during the rebalance; and it
commits one offset past a record that was never acknowledged. So records were committed but never stored,
or a partition was left with records nobody would process: found with two workers sharing a stream while
one of them leaves (docs: operations, scaling out). The chat-events topic has no holes (no compaction, no
transactions), so nothing of Faust's gap rule is needed for it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from enum import Enum
from time import monotonic
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from tacit.core.kafka import end_offsets

log = logging.getLogger(__name__)

LOST_AFTER_S = 30.0  # a delivered record unaccounted for this long (many commit intervals) was dropped
STOP_WAIT_S = 10.0  # how long a stop or rebalance waits for the batch in flight (a healthy one takes ~1 s)


class Verdict(Enum):
    DELIVER = "deliver"  # the next record of the partition
    REPEAT = "repeat"  # delivered before (a fetch from before a seek, or the same fetch twice)
    AHEAD = "ahead"  # beyond the next record: fetched from an old position; the partition is read again


class Positions:
    """The next offset each source partition must deliver; the stream sees every record once and in order."""

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}

    def moved(self, tp: TP, offset: int) -> None:
        self._next[tp] = offset

    def forget(self, tp: TP) -> None:
        self._next.pop(tp, None)

    def expected(self, tp: TP) -> int | None:
        return self._next.get(tp)

    def admit(self, tp: TP, offset: int) -> Verdict:
        expected = self._next.get(tp)
        if expected is None or offset == expected:  # None: no position known yet, the first record sets it
            self._next[tp] = offset + 1
            return Verdict.DELIVER
        return Verdict.REPEAT if offset < expected else Verdict.AHEAD


class ReadOffsets(defaultdict):
    """Faust's last-read offset per partition, blind for source partitions: :class:`Positions` checks those.

    Faust drops a record below the last-read offset and acknowledges the offsets it jumps over; a stale
    record moves that offset, so both misfire after a rebalance.
    """

    def __init__(self, is_source: Callable[[TP], bool]) -> None:
        super().__init__(lambda: None)
        self._is_source = is_source

    def __getitem__(self, tp: TP) -> int | None:
        return None if self._is_source(tp) else super().__getitem__(tp)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        transport = self.transport
        bootstrap = faust_aiokafka.server_list(transport.url, transport.default_port)
        conf = self.app.conf  # the probe connects as the worker's own clients do
        options = faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
        return await end_offsets(bootstrap, partitions, options=options)


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._positions = Positions()
        self._read_offset = ReadOffsets(self._is_source)
        self._suspected: dict[TP, tuple[int, float]] = {}  # partition -> (committed offset missing, since)
        self._rereads: dict[TP, asyncio.Task] = {}  # the seeks that read such a partition again
        self._abandoned: weakref.WeakSet[Message] = weakref.WeakSet()  # in flight when a wait gave up

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _is_source(self, tp: TP) -> bool:
        """A topic an agent reads (acknowledged, committed), as opposed to a changelog read by table recovery."""
        return self.app.topics.acks_enabled_for(tp.topic)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        sought: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if not self._is_source(tp):
                yield tp, message
                continue
            verdict = self._positions.admit(tp, message.offset)
            if verdict is Verdict.DELIVER:
                yield tp, message
            elif verdict is Verdict.AHEAD and tp not in sought:  # once per fetch: the rest of it is as stale
                sought.add(tp)
                await self._read_again(tp, message.offset)

    async def _read_again(self, tp: TP, arrived: int) -> None:
        """Seek back to the next record; if retention deleted it meanwhile, to the first one left."""
        expected = self._positions.expected(tp)
        earliest = await self._log_start(tp)
        if expected < earliest:
            log.error("%s[%d]: records %d..%d were deleted by the topic's retention before they were processed; "
                      "continuing at %d", tp.topic, tp.partition, expected, earliest - 1, earliest)
            expected = earliest
        else:
            log.warning("%s[%d]: record %d arrived where %d was next (fetched before a rebalance); reading the "
                        "partition again from there", tp.topic, tp.partition, arrived, expected)
        await self.seek(tp, expected)

    async def _log_start(self, tp: TP) -> int:
        return (await self.earliest_offsets(tp))[tp]

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._positions.moved(TP(partition.topic, partition.partition), offset)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Also a partition with no committed offset gets a known position: its beginning (``earliest``).

        aiokafka leaves such a partition where it was, and records fetched before the rebalance that were
        never processed would be skipped.
        """
        committed = await super().seek_to_committed()
        for key, offset in committed.items():
            tp = TP(key.topic, key.partition)
            if not self._is_source(tp):
                continue
            if offset is None or offset <= 0:
                await self.seek(tp, await self._log_start(tp))
            else:
                self._positions.moved(tp, offset)
        return committed

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._positions.forget(tp)
        await super().on_partitions_revoked(revoked)

    async def wait_empty(self) -> None:
        """Faust's wait for the batch in flight, bounded by ``STOP_WAIT_S``, then commit what was stored.

        A batch waiting out a database outage retries until it is stored, and Faust's own wait would hold a
        stopping worker (and its partitions) for as long. Records not stored are not acknowledged, hence not
        committed: the partitions' next owner reads them again. Nor are they later: a stopping agent's stream
        acknowledges its current record when it is cancelled, and the consumer's last commit would then move
        past records never stored. (Faust's wait swallows cancellation, so the bound is a deadline in the loop,
        not a timeout around it.)
        """
        deadline = monotonic() + STOP_WAIT_S
        while not self.should_stop and self._unacked_messages and monotonic() < deadline:
            await self.commit()
            await self._wait_for_ack(timeout=1)
            self._clean_unacked_messages()
        if self._unacked_messages:
            log.warning("%d records in flight were not stored within %.0fs; they are left to the next reader",
                        len(self._unacked_messages), STOP_WAIT_S)
            self._abandoned.update(self._unacked_messages)
        await self.commit_and_end_transactions()

    def ack(self, message: Message) -> bool:
        """A source record counts only if the stream processed it, not if it skipped it during a rebalance or a
        bounded wait gave it up."""
        if self._is_source(message.tp) and (not message.tracked or message in self._abandoned):
            message.acked = True  # read again from the committed offset (after the rebalance, by the next owner)
            return False
        return super().ack(message)

    def _new_offset(self, tp: TP) -> int | None:
        """Commit nothing while the record at the committed offset itself is unacknowledged.

        Faust commits past it when the next offset is acknowledged (it checks ``min(acked) - committed > 1``).
        """
        acked, committed = self._acked[tp], self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            self._read_again_if_lost(tp, committed)
            return None
        self._suspected.pop(tp, None)
        return super()._new_offset(tp)

    def _read_again_if_lost(self, tp: TP, committed: int) -> None:
        """A record delivered but neither acknowledged nor in the stream for long: read the partition again.

        Records are processed in order, so this should not happen; should some path still drop one, the
        partition would never be committed again. Right after a rebalance the committed record is routinely
        missing for a while (the batch in flight during it was acknowledged, the re-read has not caught up
        yet), and a record can wait seconds in the stream's queue before it is tracked: hence the wait.
        """
        delivered = (self._positions.expected(tp) or 0) > committed
        in_flight = any(message.offset == committed and message.tp == tp for message in self._unacked_messages)
        if not delivered or in_flight:
            self._suspected.pop(tp, None)
            return
        since = self._suspected.get(tp)
        if since is None or since[0] != committed:
            self._suspected[tp] = (committed, monotonic())
            return
        if monotonic() - since[1] < LOST_AFTER_S:
            return
        del self._suspected[tp]
        log.warning("%s[%d]: record %d was delivered but never processed; reading the partition again from it",
                    tp.topic, tp.partition, committed)
        self._rereads[tp] = asyncio.get_running_loop().create_task(self.seek(tp, committed))


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app whose consumers use :class:`Transport`."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
