"""Source partitions are read once and in order, and never committed past a record that wasn't processed.

Each test is a case met with two workers sharing a stream while one of them leaves (see ``tacit.ingest.transport``).
"""

import asyncio
import weakref
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from tacit.ingest import transport
from tacit.ingest.transport import Consumer, Positions, ReadOffsets, Verdict

SOURCE = TP("chat-events", 0)
CHANGELOG = TP("tacit-worker-conversations-changelog", 0)


def test_positions_deliver_each_offset_once_and_in_order():
    positions = Positions()
    assert positions.admit(SOURCE, 40) is Verdict.DELIVER  # no position known yet: the first record sets it
    assert positions.admit(SOURCE, 41) is Verdict.DELIVER
    assert positions.admit(SOURCE, 41) is Verdict.REPEAT  # the same fetch delivered twice
    assert positions.admit(SOURCE, 45) is Verdict.AHEAD  # from an old position
    assert positions.expected(SOURCE) == 42
    positions.moved(SOURCE, 30)  # sought back to the committed offset
    assert positions.admit(SOURCE, 42) is Verdict.AHEAD
    assert positions.admit(SOURCE, 30) is Verdict.DELIVER
    positions.forget(SOURCE)
    assert positions.expected(SOURCE) is None


def test_read_offsets_are_blind_for_source_partitions_only():
    offsets = ReadOffsets(lambda tp: tp == SOURCE)
    offsets[SOURCE], offsets[CHANGELOG] = 900, 12
    assert offsets[SOURCE] is None  # so Faust neither drops a re-read record nor acknowledges a jump
    assert offsets[CHANGELOG] == 12
    assert offsets[TP("other", 1)] is None


@dataclass(eq=False)  # hashable by identity, as Faust's messages are
class Record:
    tp: TP
    offset: int
    tracked: bool = True
    acked: bool = False

    @property
    def topic(self) -> str:
        return self.tp.topic


@pytest.fixture
def consumer(monkeypatch):
    """A bare Consumer (no app, no broker): fetches are scripted, seeks are recorded."""
    fetches, seeks = [], []

    async def fetched(self, timeout):
        for record in fetches.pop(0):
            yield record.tp, record

    async def seek(self, tp, offset):
        seeks.append((tp, offset))

    async def earliest_offsets(self, *tps):
        return {tp: consumer.log_start for tp in tps}

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", fetched)
    monkeypatch.setattr(faust_aiokafka.Consumer, "earliest_offsets", earliest_offsets)
    monkeypatch.setattr(faust_aiokafka.Consumer, "seek", seek)
    consumer = Consumer.__new__(Consumer)
    consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: topic == SOURCE.topic))
    consumer._positions = Positions()
    consumer._read_offset = ReadOffsets(consumer._is_source)
    consumer._acked, consumer._acked_index = defaultdict(list), defaultdict(set)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._gap = defaultdict(lambda: None)
    consumer._unacked_messages = set()
    consumer._waiting_for_ack = None
    consumer._n_acked = 0
    consumer._suspected, consumer._rereads = {}, {}
    consumer._abandoned = weakref.WeakSet()
    consumer.fetches, consumer.seeks = fetches, seeks
    consumer.log_start = 0
    return consumer


def delivered(consumer, *fetches):
    consumer.fetches.extend(fetches)

    async def read():
        return [[m.offset for _, m in [r async for r in consumer.getmany(1.0)]] for _ in fetches]

    return asyncio.run(read())


def test_a_stale_fetch_after_a_seek_is_dropped_and_the_partition_read_again(consumer):
    asyncio.run(consumer.seek(SOURCE, 656))  # Faust's seek to the committed offset after a rebalance
    stale = [Record(SOURCE, o) for o in range(1309, 1312)]  # fetched before it
    reread = [Record(SOURCE, o) for o in range(656, 660)]
    assert delivered(consumer, stale, reread) == [[], [656, 657, 658, 659]]
    assert consumer.seeks == [(SOURCE, 656), (SOURCE, 656)]  # one seek back for the whole stale fetch


def test_records_deleted_by_retention_are_skipped_not_sought_forever(consumer):
    asyncio.run(consumer.seek(SOURCE, 100))  # committed offset, but the log now starts at 400
    consumer.log_start = 400
    first_left = [Record(SOURCE, o) for o in range(400, 403)]
    assert delivered(consumer, first_left, first_left) == [[], [400, 401, 402]]
    assert consumer.seeks == [(SOURCE, 100), (SOURCE, 400)]


def test_a_partition_never_committed_is_read_from_its_beginning(consumer, monkeypatch):
    other = TP(SOURCE.topic, 1)

    async def seek_to_committed(self):
        return {SOURCE: None, other: 77, CHANGELOG: None}  # aiokafka seeks only where an offset is committed

    monkeypatch.setattr(faust_aiokafka.Consumer, "seek_to_committed", seek_to_committed)
    consumer.log_start = 5
    asyncio.run(consumer.seek_to_committed())
    assert consumer.seeks == [(SOURCE, 5)]  # not left where a fetch before the rebalance had moved it
    assert consumer._positions.expected(SOURCE) == 5 and consumer._positions.expected(other) == 77
    assert consumer._positions.expected(CHANGELOG) is None


def test_a_fetch_delivered_twice_is_processed_once(consumer):
    fetch = [Record(SOURCE, o) for o in range(1803, 1806)]
    assert delivered(consumer, fetch, fetch + [Record(SOURCE, 1806)]) == [[1803, 1804, 1805], [1806]]


def test_changelog_records_pass_untouched(consumer):
    records = [Record(CHANGELOG, 7), Record(CHANGELOG, 3)]
    assert delivered(consumer, records) == [[7, 3]]


def test_a_record_skipped_by_the_stream_is_not_acknowledged(consumer):
    consumer._committed_offset[SOURCE] = 10
    skipped = Record(SOURCE, 10, tracked=False)  # the stream skipped it: flow stopped for a rebalance
    assert consumer.ack(skipped) is False and skipped.acked
    assert consumer.ack(Record(SOURCE, 11)) is True
    assert consumer._new_offset(SOURCE) is None  # 10 was never processed


def test_nothing_is_committed_past_an_unacknowledged_record(consumer):
    consumer._committed_offset[SOURCE] = 1828
    for offset in range(1829, 1840):
        consumer.ack(Record(SOURCE, offset))
    assert consumer._new_offset(SOURCE) is None  # Faust alone would commit 1840 and lose 1828
    consumer.ack(Record(SOURCE, 1828))
    assert consumer._new_offset(SOURCE) == 1840


def test_a_stop_waits_for_the_batch_in_flight_only_so_long_and_never_commits_it(consumer, monkeypatch):
    """A batch waiting out a database outage must not hold a stopping worker, nor be committed when the
    stopping stream acknowledges its current record on the way out."""
    clock, commits = [0.0], []
    monkeypatch.setattr(transport, "monotonic", lambda: clock[0])

    async def commit(self=None):
        commits.append(consumer._new_offset(SOURCE))

    async def wait_for_ack(timeout):
        clock[0] += timeout

    monkeypatch.setattr(Consumer, "should_stop", False)
    consumer.commit = consumer.commit_and_end_transactions = commit
    consumer._wait_for_ack = wait_for_ack
    consumer._clean_unacked_messages = lambda: None
    consumer._committed_offset[SOURCE] = 5
    in_flight = [Record(SOURCE, o) for o in range(5, 8)]
    consumer._unacked_messages.update(in_flight)
    asyncio.run(consumer.wait_empty())
    assert clock[0] == pytest.approx(transport.STOP_WAIT_S)
    for record in in_flight:
        assert consumer.ack(record) is False
    assert consumer._new_offset(SOURCE) is None and set(commits) == {None}


def test_a_record_lost_on_the_way_makes_the_partition_read_again(consumer, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(transport, "monotonic", lambda: clock[0])
    asyncio.run(consumer.seek(SOURCE, 30))
    consumer.seeks.clear()
    consumer._committed_offset[SOURCE] = 30
    for offset in range(31, 40):
        consumer.ack(Record(SOURCE, offset))  # acknowledged in the batch in flight during a rebalance

    async def commit_after(seconds):
        clock[0] += seconds
        offset = consumer._new_offset(SOURCE)
        await asyncio.gather(*consumer._rereads.values())
        return offset

    assert asyncio.run(commit_after(60)) is None and consumer.seeks == []  # 30 not read yet since the seek
    consumer._positions.admit(SOURCE, 30)
    in_flight = Record(SOURCE, 30)
    consumer._unacked_messages.add(in_flight)  # tracked by the stream, not yet stored: just wait
    assert asyncio.run(commit_after(60)) is None and consumer.seeks == []
    consumer._unacked_messages.clear()  # 30 is nowhere: dropped on the way, or still in the stream's queue
    assert asyncio.run(commit_after(0)) is None and consumer.seeks == []
    assert asyncio.run(commit_after(transport.LOST_AFTER_S - 1)) is None and consumer.seeks == []
    assert asyncio.run(commit_after(1)) is None and consumer.seeks == [(SOURCE, 30)]
    assert consumer._positions.expected(SOURCE) == 30


def test_worker_metrics_listen_on_loopback_unless_configured() -> None:
    import psutil

    from tacit.devstack.stack import free_port
    from tacit.ingest.metrics import WorkerMetrics

    port = free_port()
    WorkerMetrics().serve(port)

    listening = {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert listening == {("127.0.0.1", port)}
