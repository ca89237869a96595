"""Faust's aiokafka transport, with two fixes that keep a rebalance from losing anything.

1. True end offsets: Faust rebuilds a table by reading its changelog up to the partitions' end offsets. On
   Tansu those come back short (see :mod:`tacit.kafka`), and the last records of the changelog, the newest
   state of some conversations, would be silently skipped after every restart or rebalance.
2. No stale jumps acknowledged: see :meth:`Consumer._add_gap`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from tacit.kafka import end_offsets

log = logging.getLogger(__name__)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        transport = self.transport
        bootstrap = faust_aiokafka.server_list(transport.url, transport.default_port)
        return await end_offsets(bootstrap, partitions)


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets()
        self._rereads: dict[TP, int] = {}

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """A jump right after a seek to the committed offset is a stale record: read the partition again.

        Faust takes any jump in offsets for a hole in the log (compaction, transaction markers) and counts
        the missing offsets as acknowledged. After a rebalance, records fetched from the old positions can
        still arrive once the partition was sought back to its committed offset; the jump they make was
        then acknowledged, and the records in between committed without ever being processed: a silent
        loss whenever a worker joined or left the group mid-stream. Such a jump starts exactly at the
        committed offset; the partition is sought there again, and the read offset is held until the
        re-read reaches it. A jump met while reading, or the same jump again after a re-read, is a real
        hole: Faust's rule applies.
        """
        committed = self._committed_offset[tp]
        if self._read_offset.is_held(tp):
            return  # more stale records of the same fetch; the re-read is under way
        if committed is None or offset_from != committed + 1 or self._rereads.get(tp) == committed:
            await super()._add_gap(tp, offset_from, offset_to)
            return
        log.warning("%s[%d]: record %d arrived right after a seek to the committed offset %d; reading the "
                    "partition again from there instead of skipping %d records", tp.topic, tp.partition,
                    offset_to, committed, offset_to - committed)
        self._rereads[tp] = committed
        await self.seek(tp, committed)
        self._read_offset.hold(tp, committed)


class ReadOffsets(defaultdict):
    """Faust's last-read offset per partition; one being read again keeps its start until the re-read gets there.

    Faust sets a partition's read offset after every record, also after a stale one that arrived ahead of a
    re-read (see :meth:`Consumer._add_gap`); had it moved, the re-read records would be dropped as already
    seen. Seeks and rebalances (``pop``, ``update``) end a hold.
    """

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self._held: dict[TP, int] = {}

    def hold(self, tp: TP, offset: int) -> None:
        self._held[tp] = offset

    def is_held(self, tp: TP) -> bool:
        return tp in self._held

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        held = self._held.get(tp)
        if held is not None and offset is not None and offset > held:
            return
        self._held.pop(tp, None)
        super().__setitem__(tp, offset)

    def pop(self, tp: TP, *default: Any) -> Any:
        self._held.pop(tp, None)
        return super().pop(tp, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        for tp in changes:
            self._held.pop(tp, None)
        super().update(changes)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app whose consumers use :class:`Transport`."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
