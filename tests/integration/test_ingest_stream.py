"""The stream worker on a private Tansu and PostgreSQL: restarts, crashes, outages and bad data lose nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tacit.core.db import FeedbackRow, MessageRow, RejectedEvent, SignalRow, make_engine
from tacit.core.domain import ChatEvent, Role, SignalEvent
from tacit.core.endpoints import Endpoints, read_state
from tacit.core.kafka import end_offsets
from tacit.core.settings import TacitSettings
from tacit.devstack import stack
from tacit.ingest.events import encode_event, parse_event, storable_reason, with_record_id
from tests.helpers import wait_until
from tests.helpers.s3 import CREDENTIALS, s3_server
from tests.helpers.stream import produce, worker

pytestmark = pytest.mark.integration

PRAISE = "Thank you so much, that solved it!"


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TacitSettings, Endpoints]]:
    """Tansu and PostgreSQL of this module alone (no Ray), so its counts are its own."""
    settings = TacitSettings(data_dir=tmp_path_factory.mktemp("ingest"), ray_address="not-used:1")
    try:
        yield settings, stack.up(settings, report=lambda line: None)
    finally:
        stack.down(settings, report=lambda line: None)


@pytest.fixture(scope="module")
def durable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TacitSettings, Endpoints]]:
    """Like ``private``, with Tansu keeping its topics and offsets in object storage, so it can restart."""
    data_dir = tmp_path_factory.mktemp("durable")
    settings = TacitSettings(data_dir=data_dir, ray_address="not-used:1", embedded_broker_storage="s3://tansu/")
    with s3_server(data_dir / "s3.log", "tansu") as url, pytest.MonkeyPatch.context() as env:
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT": url, "AWS_ALLOW_HTTP": "true"}.items():
            env.setenv(name, value)
        try:
            yield settings, stack.up(settings, report=lambda line: None)
        finally:
            stack.down(settings, report=lambda line: None)


def conversation(tenant: str, index: int, turns: range) -> list[ChatEvent]:
    """User turns are even: a question first, then praise, each answered by the assistant."""
    def text(turn: int) -> str:
        if turn % 2:
            return "an answer" if turn == 1 else "you are welcome"
        return PRAISE if turn else f"question {index}"

    roles = [Role.USER, Role.ASSISTANT]
    return [ChatEvent(tenant=tenant, conversation_id=f"c{index}", turn_index=t, role=roles[t % 2],
                      content=text(t), user_id=f"u{index}") for t in turns]


def send_events(private, events: list[ChatEvent]) -> None:
    settings, endpoints = private
    asyncio.run(produce(endpoints.kafka_bootstrap, settings.chat_events_topic, [encode_event(e) for e in events]))


async def committed_and_end_offsets(private) -> tuple[dict[int, int | None], dict[int, int]]:
    settings, endpoints = private
    partitions = [TopicPartition(settings.chat_events_topic, p) for p in range(settings.partitions)]
    group = AIOKafkaConsumer(bootstrap_servers=endpoints.kafka_bootstrap, group_id=settings.worker_app_id,
                             enable_auto_commit=False)  # never subscribes, so it doesn't join the group
    await group.start()
    try:
        committed = {tp.partition: await group.committed(tp) for tp in partitions}
    finally:
        await group.stop()
    ends = await end_offsets(endpoints.kafka_bootstrap, partitions)
    return committed, {tp.partition: end for tp, end in ends.items()}


def everything_committed(private) -> bool:
    """The group's offsets are at the end of the topic: no partition is left half-read or stuck.

    Asked while the workers run: a worker stopped right after the last record was stored may leave a re-read
    uncommitted, which is at-least-once and fine.
    """
    committed, ends = asyncio.run(committed_and_end_offsets(private))
    return committed == ends


def tenant_count(engine, table, tenant: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table).where(table.tenant == tenant))


def followups(engine, tenant: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(FeedbackRow.conversation_id, FeedbackRow.followup_turn)
                            .where(FeedbackRow.tenant == tenant, FeedbackRow.stage == "raw")).all()
    return sorted(tuple(row) for row in rows)


def metric_samples(port: int) -> dict[str, float]:
    """name{labels} -> value of a worker's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))}


def records_read(port: int) -> float:
    """Chat-event records a worker has read so far (none while its /metrics does not answer yet)."""
    try:
        return metric_samples(port)["tacit_worker_events_total"]
    except httpx.TransportError:
        return 0


def all_labeled(samples: dict[str, float], at_least: int) -> bool:
    labeled = sum(value for name, value in samples.items() if name.startswith("tacit_worker_labeled_total"))
    return at_least <= labeled == samples["tacit_worker_candidates_total"]


def test_table_state_survives_a_restart(private, monkeypatch):
    """Replies stored before a restart are paired with follow-ups after it (Tansu's end-offset bug)."""
    settings, endpoints = private
    metrics_port = stack.free_port()
    monkeypatch.setenv("TACIT_WORKER_METRICS_PORT", str(metrics_port))
    engine = make_engine(endpoints.database_url)
    count = 300
    send_events(private, [e for i in range(count) for e in conversation("restart", i, range(2))])
    with worker(settings, "restart-1") as proc:
        wait_until(lambda: tenant_count(engine, MessageRow, "restart") == 2 * count, "first turns stored",
                   settings.data_dir / "logs" / "restart-1.log")
        assert proc.poll() is None
    send_events(private, [e for i in range(count) for e in conversation("restart", i, range(2, 3))])
    with worker(settings, "restart-2"):
        wait_until(lambda: tenant_count(engine, MessageRow, "restart") == 3 * count, "follow-ups stored",
                   settings.data_dir / "logs" / "restart-2.log")
        # The second worker read (at least) the follow-ups, found a candidate in each and labeled every one
        # (at least: records of the first worker's last batch may come again, their commit was not yet due).
        wait_until(lambda: all_labeled(metric_samples(metrics_port), count), "labels counted",
                   settings.data_dir / "logs" / "restart-2.log")
        samples = metric_samples(metrics_port)
        wait_until(lambda: everything_committed(private), "offsets committed to the end",
                   settings.data_dir / "logs" / "restart-2.log")
    assert followups(engine, "restart") == sorted((f"c{i}", 2) for i in range(count))
    assert samples['tacit_worker_consumer_lag{partition="0"}'] == 0
    assert samples["tacit_worker_rejected_total"] == 0


def test_sigkill_and_a_second_worker_store_every_followup_once(private):
    settings, endpoints = private
    engine = make_engine(endpoints.database_url)
    count = 1000  # 5,000 events: several seconds of work, so the kill lands mid-stream even on a busy machine
    send_events(private, [e for i in range(count) for e in conversation("crash", i, range(5))])
    logs = settings.data_dir / "logs"
    with worker(settings, "crash-1") as victim:
        wait_until(lambda: tenant_count(engine, MessageRow, "crash") > 0, "a first batch", logs / "crash-1.log")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    stored_by_victim = tenant_count(engine, MessageRow, "crash")
    assert stored_by_victim < 5 * count, "killed too late to test anything"
    # The restarted worker first, the second one joining once it made progress: a rebalance mid-stream, which
    # once lost records (see tacit.ingest.transport).
    with worker(settings, "crash-2"):
        wait_until(lambda: tenant_count(engine, MessageRow, "crash") > stored_by_victim, "the restart's progress",
                   logs / "crash-2.log")
        with worker(settings, "crash-3"):
            wait_until(lambda: tenant_count(engine, MessageRow, "crash") == 5 * count, "every message stored",
                       logs / "crash-2.log", logs / "crash-3.log", timeout=180)
            wait_until(lambda: everything_committed(private), "offsets committed to the end",
                       logs / "crash-2.log", logs / "crash-3.log")
    expected = sorted((f"c{i}", turn) for i in range(count) for turn in (2, 4))
    assert followups(engine, "crash") == expected
    # user ids are pseudonyms by default, the same for one user whichever of the three workers stored it
    with engine.connect() as conn:
        users = set(conn.execute(select(MessageRow.conversation_id, MessageRow.user_id)
                                 .where(MessageRow.tenant == "crash")).all())
    assert len(users) == count == len({user for _, user in users})
    assert not {user for _, user in users} & {f"u{i}" for i in range(count)}


def test_sigkill_with_conversations_longer_than_the_window_loses_no_label(private, monkeypatch):
    """The table's changelog can be ahead of PostgreSQL at a crash: redelivered early turns are then older
    than the restored window, and their follow-ups must still be labeled."""
    settings, endpoints = private
    monkeypatch.setenv("TACIT_CONVERSATION_WINDOW", "3")
    engine = make_engine(endpoints.database_url)
    count, turns = 600, 9  # follow-ups at turns 2, 4, 6 and 8, most of them outside a window of 3
    send_events(private, [e for i in range(count) for e in conversation("long", i, range(turns))])
    logs = settings.data_dir / "logs"
    expected = sorted((f"c{i}", turn) for i in range(count) for turn in (2, 4, 6, 8))
    for attempt in range(3):
        stored = tenant_count(engine, MessageRow, "long")
        with worker(settings, f"long-{attempt}") as victim:
            wait_until(lambda before=stored: tenant_count(engine, MessageRow, "long") > before, "a batch stored",
                       logs / f"long-{attempt}.log")
            victim.send_signal(signal.SIGKILL)
            victim.wait()
    assert tenant_count(engine, MessageRow, "long") < turns * count, "killed too late to test anything"
    with worker(settings, "long-last"):
        wait_until(lambda: tenant_count(engine, MessageRow, "long") == turns * count, "every message stored",
                   logs / "long-last.log", timeout=180)
        wait_until(lambda: everything_committed(private), "offsets committed to the end", logs / "long-last.log")
    assert followups(engine, "long") == expected


def test_a_worker_leaving_mid_stream_loses_nothing(private, monkeypatch):
    """Two workers share the stream; one is stopped cleanly (SIGTERM, as in a scale-in) while records flow."""
    settings, endpoints = private
    leaving_port = stack.free_port()
    engine = make_engine(endpoints.database_url)
    count = 2000
    send_events(private, [e for i in range(count) for e in conversation("leave", i, range(5))])
    logs = settings.data_dir / "logs"
    stored = lambda: tenant_count(engine, MessageRow, "leave")
    with worker(settings, "stay"):
        wait_until(lambda: stored() > 0, "a first batch", logs / "stay.log")
        monkeypatch.setenv("TACIT_WORKER_METRICS_PORT", str(leaving_port))  # the second worker's own /metrics
        with worker(settings, "leave"):
            wait_until(lambda: "Worker ready" in (logs / "leave.log").read_text(), "the second worker's join",
                       logs / "leave.log")
            # it leaves once it has records of its own in hand (or, on a fast machine, the stream has ended)
            wait_until(lambda: records_read(leaving_port) > 0 or stored() == 5 * count,
                       "the second worker's first records", logs / "leave.log")
        wait_until(lambda: stored() == 5 * count, "every message stored", logs / "stay.log", logs / "leave.log",
                   timeout=90)
        wait_until(lambda: everything_committed(private), "offsets committed to the end", logs / "stay.log")
    assert followups(engine, "leave") == sorted((f"c{i}", turn) for i in range(count) for turn in (2, 4))


def restart_postgres(settings: TacitSettings, outage: Callable[[], None]) -> None:
    """Stop the embedded PostgreSQL, run ``outage``, then start it again as an operator would: ``tacit stack
    up`` on the same data directory (it must come back where the running worker looks for it)."""
    record = read_state(settings)["postgres"]
    os.kill(record.pids[0], signal.SIGINT)
    wait_until(lambda: not record.alive(), "PostgreSQL to stop", Path(record.log))
    outage()
    stack.up(settings, report=lambda line: None)


def test_postgres_outage_mid_stream_loses_nothing(private, monkeypatch):
    settings, endpoints = private
    metrics_port = stack.free_port()
    monkeypatch.setenv("TACIT_WORKER_METRICS_PORT", str(metrics_port))
    engine = make_engine(endpoints.database_url)
    count = 200
    events = [e for i in range(count) for e in conversation("outage", i, range(5))]
    logs = settings.data_dir / "logs"
    with worker(settings, "outage") as proc:
        send_events(private, events[: len(events) // 2])
        wait_until(lambda: tenant_count(engine, MessageRow, "outage") > 0, "a first batch", logs / "outage.log")

        def while_down() -> None:
            send_events(private, events[len(events) // 2:])
            # a batch failed to be stored, and again after each back-off: the worker is waiting it out
            wait_until(lambda: metric_samples(metrics_port)["tacit_worker_sink_retries_total"] >= 3,
                       "the worker retrying while PostgreSQL is down", logs / "outage.log")
            assert proc.poll() is None, "the worker must wait for the database, not exit"

        restart_postgres(settings, while_down)
        assert read_state(settings)["postgres"].address == endpoints.database_url
        wait_until(lambda: tenant_count(engine, MessageRow, "outage") == len(events), "every message stored",
                   logs / "outage.log", timeout=120)
        wait_until(lambda: everything_committed(private), "offsets committed to the end", logs / "outage.log")
    assert followups(engine, "outage") == sorted((f"c{i}", turn) for i in range(count) for turn in (2, 4))


def test_broker_restarted_mid_stream_loses_and_duplicates_nothing(durable, monkeypatch):
    """Tansu stopped and started again by ``tacit stack up`` while a worker is behind on what was sent: the
    worker reconnects, reads the rest, and re-reads the uncommitted records without storing them twice."""
    settings, endpoints = durable
    engine = make_engine(endpoints.database_url)
    count = 2000
    events = [e for i in range(count) for e in conversation("broker", i, range(5))]
    before, after = events[: len(events) * 4 // 5], events[len(events) * 4 // 5:]
    logs = settings.data_dir / "logs"
    monkeypatch.setenv("TACIT_SINK_BATCH_SIZE", "50")  # small batches: stored in steps, most still unread
    send_events(durable, before)  # before the worker starts, so it is behind when the broker stops
    with worker(settings, "broker") as proc:
        wait_until(lambda: tenant_count(engine, MessageRow, "broker") > 0, "a first batch", logs / "broker.log",
                   interval=0.05)
        broker = read_state(settings)["kafka"]
        os.kill(broker.pids[0], signal.SIGTERM)
        wait_until(lambda: not broker.alive(), "Tansu to stop", Path(broker.log))
        assert tenant_count(engine, MessageRow, "broker") < len(before), "the fault must hit unread records"
        stack.up(settings, report=lambda line: None)
        assert read_state(settings)["kafka"].address == endpoints.kafka_bootstrap
        send_events(durable, after)
        wait_until(lambda: tenant_count(engine, MessageRow, "broker") == len(events), "every message stored",
                   logs / "broker.log", timeout=180)
        wait_until(lambda: everything_committed(durable), "offsets committed to the end", logs / "broker.log")
        assert proc.poll() is None, "the worker must ride out the broker's restart"
    assert followups(engine, "broker") == sorted((f"c{i}", turn) for i in range(count) for turn in (2, 4))


FREEZE_S = float(os.environ.get("TACIT_FAULT_FREEZE_S", "5"))  # the full fault run freezes for 30 s


def test_postgres_frozen_mid_stream_loses_and_duplicates_nothing(private):
    """PostgreSQL stopped dead (SIGSTOP: connections open, no answer) while events and bad records flow."""
    settings, endpoints = private
    engine = make_engine(endpoints.database_url)
    count = 200
    events = [encode_event(e) for i in range(count) for e in conversation("frozen", i, range(5))]
    bad = [(f"frozen:bad{i}".encode(), b"{not json") for i in range(20)]
    postmaster = psutil.Process(read_state(settings)["postgres"].pids[0])
    logs = settings.data_dir / "logs"
    with worker(settings, "frozen"):
        asyncio.run(produce(endpoints.kafka_bootstrap, settings.chat_events_topic, events[: len(events) // 2]))
        wait_until(lambda: tenant_count(engine, MessageRow, "frozen") > 0, "a first batch", logs / "frozen.log")
        frozen = [postmaster, *postmaster.children()]  # the backends serving open connections too
        for process in frozen:
            process.suspend()
        try:
            asyncio.run(produce(endpoints.kafka_bootstrap, settings.chat_events_topic, events[len(events) // 2:] + bad))
            time.sleep(FREEZE_S)  # the fault itself lasts this long; nothing is waited on
        finally:
            for process in frozen:
                process.resume()
        wait_until(lambda: tenant_count(engine, MessageRow, "frozen") == len(events), "every message stored",
                   logs / "frozen.log")
        wait_until(lambda: everything_committed(private), "offsets committed to the end", logs / "frozen.log")
    with engine.connect() as conn:
        dead = conn.scalar(select(func.count()).select_from(RejectedEvent)
                           .where(RejectedEvent.key.like(b"frozen:bad%")))
    assert followups(engine, "frozen") == sorted((f"c{i}", turn) for i in range(count) for turn in (2, 4))
    assert dead == len(bad)


def test_sigterm_during_a_postgres_outage_stops_the_worker(private, monkeypatch):
    """A worker told to stop while its batch waits for the database must exit and free its partitions; the
    batch is delivered again to the next worker."""
    settings, endpoints = private
    metrics_port = stack.free_port()
    monkeypatch.setenv("TACIT_WORKER_METRICS_PORT", str(metrics_port))
    engine = make_engine(endpoints.database_url)
    events = [e for i in range(50) for e in conversation("stop", i, range(5))]
    logs = settings.data_dir / "logs"
    with worker(settings, "stop-1") as proc:
        wait_until(lambda: records_read(metrics_port) == 0 and "Worker ready" in (logs / "stop-1.log").read_text(),
                   "the worker's start", logs / "stop-1.log")

        def while_down() -> None:
            send_events(private, events)
            wait_until(lambda: metric_samples(metrics_port)["tacit_worker_sink_retries_total"] >= 1,
                       "the worker retrying while PostgreSQL is down", logs / "stop-1.log")
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: proc.poll() is not None, "the worker to exit on SIGTERM", logs / "stop-1.log",
                       timeout=30)

        restart_postgres(settings, while_down)
    with worker(settings, "stop-2"):
        wait_until(lambda: tenant_count(engine, MessageRow, "stop") == len(events), "every message stored",
                   logs / "stop-2.log")
        wait_until(lambda: everything_committed(private), "offsets committed to the end", logs / "stop-2.log")
    assert followups(engine, "stop") == sorted((f"c{i}", turn) for i in range(50) for turn in (2, 4))


def event_like(conversation_id: str) -> st.SearchStrategy[dict]:
    """Chat events with any field possibly of the wrong type, out of range, huge or missing."""
    junk = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.lists(st.integers(), max_size=2))
    return st.fixed_dictionaries(
        {"tenant": st.just("fuzz"), "conversation_id": st.just(conversation_id)},
        optional={
            "turn_index": st.one_of(st.integers(-2, 3), junk),
            "role": st.one_of(st.sampled_from(["user", "assistant", "system", "robot"]), junk),
            "content": st.one_of(st.text(max_size=40), st.just("x" * 300_000), junk),
            "metadata": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2), junk),
            "surprise": st.text(max_size=5),
        },
    )


def signal_like(conversation_id: str) -> st.SearchStrategy[dict]:
    """Feedback signals with any field possibly of the wrong kind, out of range or missing."""
    junk = st.one_of(st.none(), st.integers(-1, 11), st.text(max_size=5))
    return st.fixed_dictionaries(
        {"tenant": st.just("fuzz"), "conversation_id": st.just(conversation_id),
         "signal": st.sampled_from(["thumbs", "reaction", "regenerate", "edit", "copy", "rating", "sigh"])},
        optional={"message_turn": st.one_of(st.integers(-1, 3), junk), "up": st.one_of(st.booleans(), junk),
                  "name": junk, "text": junk, "score": junk, "scale": st.one_of(st.sampled_from([5, 10]), junk),
                  "replacement_turn": junk},
    )


@st.composite
def raw_records(draw) -> tuple[bytes | None, bytes]:
    """One Kafka record: arbitrary bytes (invalid UTF-8, not JSON), JSON of the wrong shape, or an event."""
    conversation_id = draw(st.uuids()).hex
    key = f"fuzz:{conversation_id}".encode()
    value = draw(st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64).map(str.encode),
        st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                    max_size=3),
                     max_leaves=6).map(lambda v: json.dumps(v).encode()),
        event_like(conversation_id).map(lambda v: json.dumps(v).encode()),
        signal_like(conversation_id).map(lambda v: json.dumps(v).encode()),
    ))
    return draw(st.sampled_from([key, b"wrong-key", None])) if draw(st.booleans()) else key, value


def sentinels(settings: TacitSettings, name: str) -> list[ChatEvent]:
    return [ChatEvent(tenant="sentinel", conversation_id=f"{name}-{p}", turn_index=0, role=Role.USER,
                      content="end") for p in range(settings.partitions)]


@pytest.fixture(scope="module")
def fuzz_worker(private) -> Iterator[subprocess.Popen]:
    settings, _ = private
    with worker(settings, "fuzz") as proc:
        yield proc


@hypothesis_settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(records=st.lists(raw_records(), min_size=1, max_size=30))
def test_every_fuzzed_record_is_stored_or_dead_lettered(private, fuzz_worker, records):
    settings, endpoints = private
    engine = make_engine(endpoints.database_url)
    positions = asyncio.run(produce(endpoints.kafka_bootstrap, settings.chat_events_topic, records))
    mark = uuid.uuid4().hex
    send_events(private, sentinels(settings, mark))
    wait_until(lambda: stored_sentinels(engine, mark) == settings.partitions, "the sentinels",
               settings.data_dir / "logs" / "fuzz.log")
    assert fuzz_worker.poll() is None, "bad records must never stop the worker"
    with engine.connect() as conn:
        rejected = {(partition, offset): reason for partition, offset, reason in conn.execute(
            select(RejectedEvent.partition, RejectedEvent.offset, RejectedEvent.reason)
            .where(RejectedEvent.topic == settings.chat_events_topic))}
        stored = set(conn.execute(select(MessageRow.conversation_id, MessageRow.turn_index)
                                  .where(MessageRow.tenant == "fuzz")).all())
        signals = set(conn.execute(select(SignalRow.conversation_id, SignalRow.event_id)
                                   .where(SignalRow.tenant == "fuzz")).all())
    for (key, value), position in zip(records, positions, strict=True):
        parsed = parse_event(value, key)
        if isinstance(parsed, ChatEvent):
            assert (parsed.conversation_id, parsed.turn_index) in stored
        elif isinstance(parsed, SignalEvent):
            named = with_record_id(parsed, settings.chat_events_topic, *position)
            assert (parsed.conversation_id, named.event_id) in signals
        else:
            assert rejected[position] == storable_reason(parsed.reason)


def test_a_signal_sent_before_its_message_is_stored_and_a_malformed_one_dead_lettered(private, fuzz_worker):
    settings, endpoints = private
    engine = make_engine(endpoints.database_url)
    thumbs = {"tenant": "signals", "conversation_id": "c1", "message_turn": 1, "signal": "thumbs", "up": True}
    records = [(b"signals:c1", json.dumps(thumbs).encode()),
               (b"signals:c1", json.dumps({**thumbs, "signal": "rating", "score": 11, "scale": 10}).encode())]
    (partition, offset), (_, bad_offset) = asyncio.run(produce(endpoints.kafka_bootstrap,
                                                               settings.chat_events_topic, records))
    send_events(private, conversation("signals", 1, range(3)))
    wait_until(lambda: tenant_count(engine, MessageRow, "signals") == 3 and tenant_count(engine, SignalRow, "signals"),
               "the signal and its conversation", settings.data_dir / "logs" / "fuzz.log")
    with engine.connect() as conn:
        reason = conn.scalar(select(RejectedEvent.reason).where(RejectedEvent.offset == bad_offset,
                                                                RejectedEvent.key == b"signals:c1"))
        stored = conn.execute(select(SignalRow.kind, SignalRow.message_turn, SignalRow.event_id)
                              .where(SignalRow.tenant == "signals")).all()
    assert reason.startswith("invalid feedback signal: rating.score")
    # sent without an event id: its record's position names it, the same on every redelivery
    assert [tuple(row) for row in stored] == [("thumbs", 1, f"{settings.chat_events_topic}:{partition}:{offset}")]


def stored_sentinels(engine, mark: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(MessageRow)
                           .where(MessageRow.conversation_id.startswith(mark)))
