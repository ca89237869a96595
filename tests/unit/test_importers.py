"""Tacit's conversation JSONL: streamed, gzip or plain, every skipped record counted with its reason."""

import gzip
import json

from ingest.importers import ImportReport, read_conversations
from tacit.demo import SAMPLE


def write(path, lines, compress=False):
    opener = gzip.open if compress else open
    with opener(path, "wt") as out:
        out.write("\n".join(lines) + "\n")
    return path


def conversation(cid="c1", **extra):
    return json.dumps({"conversation_id": cid, "user_id": "u1",
                       "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                       **extra})


def test_reads_plain_and_gzip_with_deterministic_event_ids(tmp_path):
    plain = write(tmp_path / "a.jsonl", [conversation()])
    zipped = write(tmp_path / "a.jsonl.gz", [conversation()], compress=True)
    first = list(read_conversations(plain, "acme", ImportReport()))
    second = list(read_conversations(zipped, "acme", ImportReport()))
    def without_time(conversations):
        return [[e.model_dump(exclude={"timestamp"}) for e in events] for events in conversations]

    assert without_time(first) == without_time(second)
    (events,) = first
    assert [(e.turn_index, e.role.value, e.tenant, e.user_id) for e in events] == [
        (0, "user", "acme", "u1"), (1, "assistant", "acme", "u1")]


def test_bad_records_are_skipped_and_counted(tmp_path):
    lines = [
        conversation("ok"),
        "{not json",
        json.dumps({"messages": []}),
        json.dumps({"conversation_id": "x", "messages": []}),
        json.dumps({"conversation_id": "y", "messages": [{"role": "robot", "content": "?"}]}),
        "",
        "[]",
    ]
    report = ImportReport()
    converted = list(read_conversations(write(tmp_path / "b.jsonl", lines), "t", report))
    assert len(converted) == 1 and report.conversations == 1 and report.events == 2
    assert report.skipped == {"not JSON": 1, "missing conversation_id": 1, "missing or empty messages": 1,
                              "message 0": 1, "line is not a JSON object": 1}


def test_bundled_sample_is_real_multi_turn_chat():
    report = ImportReport()
    conversations = list(read_conversations(SAMPLE, "demo", report))
    assert report.conversations > 5000 and not report.skipped
    followups = sum(1 for events in conversations for a, b in zip(events, events[1:])
                    if a.role.value == "assistant" and b.role.value == "user")
    assert followups > 10_000
