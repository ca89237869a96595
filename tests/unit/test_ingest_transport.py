"""A jump in offsets right after a seek to the committed offset is re-read, never acknowledged as a hole."""

import asyncio
from collections import defaultdict

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from ingest.transport import Consumer, ReadOffsets

PARTITION = TP("chat-events", 0)


@pytest.fixture
def consumer(monkeypatch):
    """A bare Consumer (no app, no broker) with Faust's gap rule and ``seek`` recorded instead of run."""
    filled, seeks = [], []

    async def fill_gap(self, tp, offset_from, offset_to):
        filled.append((tp, offset_from, offset_to))

    async def seek(tp, offset):
        seeks.append((tp, offset))
        consumer._read_offset[tp] = offset  # what Consumer.seek does besides moving the fetcher

    monkeypatch.setattr(faust_aiokafka.Consumer, "_add_gap", fill_gap)
    consumer = Consumer.__new__(Consumer)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._read_offset = ReadOffsets()
    consumer._rereads = {}
    consumer.seek = seek
    consumer.filled, consumer.seeks = filled, seeks
    return consumer


def test_a_stale_record_after_a_seek_makes_the_partition_read_again(consumer):
    consumer._committed_offset[PARTITION] = 656
    consumer._read_offset[PARTITION] = 656  # Faust's seek to the committed offset
    asyncio.run(consumer._add_gap(PARTITION, 657, 1309))  # record 1309 arrives first: fetched before the rebalance
    consumer._read_offset[PARTITION] = 1309  # Faust marks the stale record read...
    assert consumer._read_offset[PARTITION] == 656  # ...which must not hide the re-read records
    asyncio.run(consumer._add_gap(PARTITION, 657, 1310))  # the rest of the stale fetch
    consumer._read_offset[PARTITION] = 656  # the re-read arrives
    consumer._read_offset[PARTITION] = 657
    assert consumer.seeks == [(PARTITION, 656)]
    assert consumer.filled == []  # nothing counted as acknowledged
    assert consumer._read_offset[PARTITION] == 657


def test_a_jump_met_while_reading_is_a_hole_as_faust_defines_it(consumer):
    consumer._committed_offset[PARTITION] = 100
    consumer._read_offset[PARTITION] = 180
    asyncio.run(consumer._add_gap(PARTITION, 181, 190))
    assert consumer.filled == [(PARTITION, 181, 190)] and consumer.seeks == []


def test_the_same_jump_after_a_re_read_is_a_real_hole(consumer):
    consumer._committed_offset[PARTITION] = 50
    consumer._read_offset[PARTITION] = 50
    asyncio.run(consumer._add_gap(PARTITION, 51, 60))
    consumer._read_offset[PARTITION] = 50  # the re-read reached the start: the hold ends
    asyncio.run(consumer._add_gap(PARTITION, 51, 60))  # and the log really has nothing at 51..59
    assert consumer.seeks == [(PARTITION, 50)]
    assert consumer.filled == [(PARTITION, 51, 60)]


def test_a_rebalance_ends_a_hold():
    offsets = ReadOffsets()
    offsets[PARTITION] = 10
    offsets.hold(PARTITION, 10)
    offsets.update({PARTITION: 500})  # Faust's seek to the committed offsets after the next rebalance
    offsets[PARTITION] = 501
    assert offsets[PARTITION] == 501
    offsets.hold(PARTITION, 501)
    offsets.pop(PARTITION)  # partition revoked
    assert not offsets.is_held(PARTITION) and offsets[PARTITION] is None
