"""Every import format: streamed from JSONL (gzip or plain) or parquet, stable ids, bad records counted."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tacit.core.domain import ChatEvent, Role, SignalEvent
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.data import SAMPLE_CONVERSATIONS
from tacit.ingest.replay import ReplayOptions, replay
from tacit.readers.importers import ImportReport, detect_format, read_conversations
from tests.helpers.hostile import RAW, VALUES

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")

WILDCHAT = {
    "conversation_hash": "0a1b2c", "model": "gpt-4-0314", "language": "English", "hashed_ip": "ip-hash-7",
    "conversation": [
        {"role": "user", "content": "Write a haiku about rain.", "timestamp": "2023-04-09T00:02:53+00:00"},
        {"role": "assistant", "content": "Soft rain on the roof", "timestamp": "2023-04-09T00:02:57+00:00"},
        {"role": "user", "content": "No, in Spanish please.", "timestamp": "2023-04-09T00:03:20+00:00"},
    ],
}
LMSYS = {
    "conversation_id": "33f01939a744455c869cb234afca47f1", "model": "vicuna-13b", "language": "English",
    "conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}],
}
SHAREGPT = {
    "id": "QWJhYvA_0",
    "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "2+2?"},
                      {"from": "gpt", "value": "4"}, {"from": "human", "value": "thanks!"}],
}
OPENAI = {
    "messages": [
        {"role": "developer", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                     {"type": "image_url", "image_url": {"url": "data:..."}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"label\": \"cat\"}"},
        {"role": "assistant", "content": "A cat."},
    ],
}
TACIT = {"conversation_id": "c1", "user_id": "u1", "model": "m1",
         "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
HH = {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Thanks, bye",
      "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."}


def write_jsonl(path: Path, records: list, compress: bool = False) -> Path:
    opener = gzip.open if compress else open
    with opener(path, "wt") as out:
        for record in records:
            out.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def read(path: Path, format_name: str | None = None, tenant: str = "acme") -> tuple[list, ImportReport]:
    report = ImportReport()
    return list(read_conversations(path, tenant, report, format_name)), report


def summary(events: list[ChatEvent]) -> list[tuple]:
    return [(e.turn_index, e.role, e.content) for e in events]


def without_time(conversations: list[list[ChatEvent]]) -> list[list[dict]]:
    return [[e.model_dump(exclude={"timestamp"}) for e in events] for events in conversations]


def test_plain_and_gzip_give_the_same_events_with_stable_ids(tmp_path):
    first, _ = read(write_jsonl(tmp_path / "a.jsonl", [TACIT]))
    second, _ = read(write_jsonl(tmp_path / "a.jsonl.gz", [TACIT], compress=True))
    assert without_time(first) == without_time(second)
    (events,) = first
    assert [(e.turn_index, e.role, e.tenant, e.user_id, e.assistant_model) for e in events] == [
        (0, Role.USER, "acme", "u1", None), (1, Role.ASSISTANT, "acme", "u1", "m1")]


@pytest.mark.parametrize("record, expected", [
    (TACIT, "tacit"), (WILDCHAT, "wildchat"), (LMSYS, "lmsys"), (SHAREGPT, "sharegpt"), (OPENAI, "openai"),
    (HH, "hh"), ({"message_tree_id": "t", "prompt": {}}, "oasst"),
])
def test_format_is_detected_from_the_first_record(tmp_path, record, expected):
    assert detect_format(write_jsonl(tmp_path / "x.jsonl", [record])) == expected


def test_wildchat_keeps_user_timestamps_model_and_language(tmp_path):
    (events,), _ = read(write_jsonl(tmp_path / "w.jsonl", [WILDCHAT]), "wildchat")
    assert summary(events) == [(0, Role.USER, "Write a haiku about rain."),
                               (1, Role.ASSISTANT, "Soft rain on the roof"), (2, Role.USER, "No, in Spanish please.")]
    assert {e.conversation_id for e in events} == {"wildchat-0a1b2c"}
    assert {e.user_id for e in events} == {"ip-hash-7"} and {e.language for e in events} == {"English"}
    assert [e.assistant_model for e in events] == [None, "gpt-4-0314", None]
    assert events[2].timestamp == datetime(2023, 4, 9, 0, 3, 20, tzinfo=UTC)


def test_wildchat_parquet_reads_like_jsonl(tmp_path):
    """A parquet written as the data set ships it (real timestamps), read in row batches."""
    rows = [{**WILDCHAT, "conversation": [{**m, "timestamp": datetime.fromisoformat(m["timestamp"])}
                                          for m in WILDCHAT["conversation"]]},
            {**WILDCHAT, "conversation_hash": "second"}]
    rows[1]["conversation"] = rows[0]["conversation"][:2]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "w.parquet", row_group_size=1)
    from_parquet, report = read(tmp_path / "w.parquet")  # format detected from the schema
    from_jsonl, _ = read(write_jsonl(tmp_path / "w.jsonl", [WILDCHAT]), "wildchat")
    assert report.conversations == 2 and report.events == 5
    assert [e.model_dump() for e in from_parquet[0]] == [e.model_dump() for e in from_jsonl[0]]


def test_lmsys_has_no_user_and_credits_the_model(tmp_path):
    (events,), _ = read(write_jsonl(tmp_path / "l.jsonl", [LMSYS]), "lmsys")
    assert summary(events) == [(0, Role.USER, "hi"), (1, Role.ASSISTANT, "Hello!")]
    assert events[0].conversation_id == "lmsys-33f01939a744455c869cb234afca47f1"
    assert events[0].user_id is None and events[1].assistant_model == "vicuna-13b"


def test_sharegpt_maps_speakers_and_keeps_system(tmp_path):
    (events,), _ = read(write_jsonl(tmp_path / "s.jsonl", [SHAREGPT]), "sharegpt")
    assert summary(events) == [(0, Role.SYSTEM, "Be brief."), (1, Role.USER, "2+2?"), (2, Role.ASSISTANT, "4"),
                               (3, Role.USER, "thanks!")]
    assert events[0].conversation_id == "sharegpt-QWJhYvA_0"


def test_openai_keeps_text_parts_and_leaves_out_tool_plumbing(tmp_path):
    (first, second), _ = read(write_jsonl(tmp_path / "o.jsonl", [OPENAI, OPENAI]), "openai")
    assert summary(first) == [(0, Role.SYSTEM, "You are helpful."), (1, Role.USER, "What is in this image?"),
                              (2, Role.ASSISTANT, "A cat.")]
    assert first[0].conversation_id == second[0].conversation_id  # no id in the source: a content hash


def test_hh_imports_the_chosen_transcript(tmp_path):
    (events,), _ = read(write_jsonl(tmp_path / "h.jsonl", [HH]), "hh")
    assert summary(events) == [(0, Role.USER, "Hi there"), (1, Role.ASSISTANT, "Hello! How can I help?"),
                               (2, Role.USER, "Thanks, bye")]
    assert events[0].conversation_id.startswith("hh-")


@pytest.mark.parametrize("format_name, records, reasons", [
    ("tacit", ["{not json", "[]", {"messages": []}, {"conversation_id": "y", "messages": [{"role": "robot"}]},
               {"conversation_id": "z", "messages": ["hi"]}],
     {"not JSON": 1, "record is not a JSON object": 1, "no messages": 1, "unknown role": 1,
      "message is not an object": 1}),
    ("wildchat", [{**WILDCHAT, "conversation_hash": None},
                  {**WILDCHAT, "conversation": [{"role": "user", "content": 42}]},
                  {**WILDCHAT, "conversation": [{"role": "user", "content": "x", "timestamp": "yesterday"}]}],
     {"missing conversation_hash": 1, "message content is not text": 1, "invalid event": 1}),
    ("lmsys", [{"conversation": LMSYS["conversation"]}, {**LMSYS, "conversation": "hi"}],
     {"missing conversation_id": 1, "no messages": 1}),
    ("sharegpt", [{"conversations": SHAREGPT["conversations"]},
                  {**SHAREGPT, "conversations": [{"from": "bot", "value": "?"}]},
                  {**SHAREGPT, "conversations": [{"from": "human", "value": "a\x00b"}]}],
     {"missing id": 1, "unknown role": 1, "invalid event": 1}),
    ("openai", [{"messages": [{"role": "user"}]}, {"prompt": "completion-style"}],
     {"message content is not text": 1, "no messages": 1}),
    ("hh", [{"rejected": "x"}, {"chosen": "no turns here"}], {"missing chosen": 1, "no messages": 1}),
])
def test_malformed_records_are_skipped_with_reasons(tmp_path, format_name, records, reasons):
    good = {"tacit": TACIT, "wildchat": WILDCHAT, "lmsys": LMSYS, "sharegpt": SHAREGPT, "openai": OPENAI,
            "hh": HH}[format_name]
    conversations, report = read(write_jsonl(tmp_path / "bad.jsonl", [good, *records, good]), format_name)
    assert len(conversations) == report.conversations == 2
    assert {reason.split(" (")[0]: n for reason, n in report.skipped.items()} == reasons


def test_invalid_utf8_is_one_skipped_record(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(json.dumps(TACIT).encode() + b"\n" + b'{"conversation_id": "\xff"}\n')
    conversations, report = read(path, "tacit")
    assert len(conversations) == 1 and report.skipped == {"not UTF-8": 1}


def test_an_event_too_large_names_the_field(tmp_path):
    huge = {**TACIT, "messages": [{"role": "user", "content": "x" * 300_000}]}
    _, report = read(write_jsonl(tmp_path / "h.jsonl", [huge]), "tacit")
    (reason,) = report.skipped
    assert reason.startswith("invalid event (content:")


def test_bundled_sample_is_real_multi_turn_chat():
    conversations, report = read(SAMPLE_CONVERSATIONS, tenant="demo")
    assert report.conversations > 5000 and not report.skipped
    followups = sum(1 for events in conversations for a, b in pairwise(events)
                    if a.role.value == "assistant" and b.role.value == "user")
    assert followups > 10_000


@needs_shared_data
def test_real_hh_rlhf_file_imports_every_record():
    path = SHARED_DATA / "hh-rlhf" / "helpful-base_test.jsonl.gz"
    conversations, report = read(path)  # detected as hh
    assert report.conversations == 2354 and not report.skipped
    with gzip.open(path, "rt") as lines:
        turns = sum(len(re.findall(r"\n\n(?:Human|Assistant): ", json.loads(line)["chosen"])) for line in lines)
    assert report.events == turns
    assert all(events[0].role is Role.USER for events in conversations)
    again, _ = read(path, "hh")
    assert [e[0].event_id for e in again] == [e[0].event_id for e in conversations]


@needs_shared_data
def test_real_oasst_trees_become_every_root_to_leaf_path():
    conversations, report = read(SHARED_DATA / "oasst" / "en_100_tree.jsonl")  # detected as oasst
    assert not report.skipped and len({events[0].user_id for events in conversations}) == 100
    assert len({events[0].conversation_id for events in conversations}) == report.conversations
    assert all(events[0].role is Role.USER for events in conversations)
    followups = {(a.content, b.content) for events in conversations for a, b in pairwise(events)
                 if a.role is Role.ASSISTANT and b.role is Role.USER}
    assert len(followups) == 380  # the data set's README: 380 prompter follow-ups at depth >= 2


def test_oasst_thumbs_and_emojis_become_signals_on_their_assistant_messages(tmp_path):
    reply = {"message_id": "m2", "role": "assistant", "text": "Use sorted().", "emojis":
             {"+1": 2, "-1": 1, "red_flag": 1, "_skip_labeling": 3}, "replies": []}
    tree = {"message_tree_id": "t1", "prompt": {"message_id": "m1", "role": "prompter", "text": "Sort?",
                                                "emojis": {"+1": 5}, "replies": [reply]}}
    path = write_jsonl(tmp_path / "oasst.jsonl", [tree])
    report = ImportReport()

    (events,) = read_conversations(path, "acme", report, "oasst", signals=True)
    signals = [e for e in events if isinstance(e, SignalEvent)]
    assert sorted((s.message_turn, s.signal, getattr(s, "up", None), getattr(s, "name", None)) for s in signals) == [
        (1, "reaction", None, "red_flag"), (1, "thumbs", False, None), (1, "thumbs", True, None),
        (1, "thumbs", True, None)]
    assert report.signals == 4 and len({s.event_id for s in signals}) == 4
    assert [e.event_id for e in next(read_conversations(path, "acme", ImportReport(), "oasst", signals=True))] == [
        e.event_id for e in events]  # replayed again: the same ids, so no new rows
    assert all(isinstance(e, ChatEvent) for e in next(read_conversations(path, "acme", ImportReport(), "oasst")))


def test_replay_refuses_a_bad_tenant_before_connecting(tmp_path):
    with pytest.raises(TacitError, match="tenant 'a:b'"):
        replay(SAMPLE_CONVERSATIONS, TacitSettings(data_dir=tmp_path), "127.0.0.1:1", ReplayOptions(tenant="a:b"))


def test_a_conversation_too_large_for_kafka_is_skipped_and_the_rest_read(tmp_path):
    path = tmp_path / "chats.jsonl"
    conversations = [{"conversation_id": f"c{i}", "messages": [
        {"role": "user", "content": "\u0001" * 199_000 if i == 3 else "hello"},
        {"role": "assistant", "content": "hi"}]} for i in range(7)]
    path.write_text("\n".join(json.dumps(c) for c in conversations))
    report = ImportReport()

    read = list(read_conversations(path, "acme", report, "tacit"))

    assert len(read) == 6
    [reason] = report.skipped
    assert "bytes as JSON" in reason


@pytest.mark.parametrize("format_name", ["tacit", "wildchat", "sharegpt", "openai", "oasst"])
def test_hostile_lines_are_skipped_with_reasons_never_an_exception(tmp_path, format_name):
    """Whatever a file holds, reading it yields valid events and counts every other record as skipped."""
    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(lines=st.lists(st.one_of(RAW, VALUES.map(lambda value: json.dumps(value).encode())), min_size=1,
                          max_size=5))
    def check(lines: list[bytes]) -> None:
        path = tmp_path / "hostile.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        report = ImportReport()
        if lines[0].startswith(b"\x1f\x8b"):  # gzip's magic: damaged compressed data is one clear error
            with pytest.raises(TacitError, match="damaged gzip"):
                list(read_conversations(path, "acme", report, format_name))
            return
        conversations = list(read_conversations(path, "acme", report, format_name))
        assert all(isinstance(event, ChatEvent) for conversation in conversations for event in conversation)
        if any(line.strip() for line in lines):  # blank lines are not records
            assert len(conversations) + sum(report.skipped.values()) >= 1, report  # read, or counted as skipped

    check()
