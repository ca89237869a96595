"""Raw records either become chat events or carry a reason for the dead-letter table."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tacit.core.domain import ChatEvent
from tacit.ingest.events import Rejection, encode_event, parse_event, storable_reason


def good(**changes) -> dict:
    return {"tenant": "acme", "conversation_id": "c1", "turn_index": 1, "role": "user",
            "content": "thanks!", **changes}


def test_round_trip():
    event = ChatEvent(**good())
    key, value = encode_event(event)
    assert key == b"acme:c1"
    assert parse_event(value, key) == event


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty record"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps(good(turn_index=-1)).encode(), "turn_index"),
        (json.dumps(good(role="robot")).encode(), "role"),
        (json.dumps(good(content="a\u0000b")).encode(), "NUL"),
        (json.dumps(good(surprise=1)).encode(), "surprise"),
        (json.dumps({"tenant": "acme"}).encode(), "Field required"),
        (b'{"tenant": "acme", "conversation_id": "c1", "turn_index": 0, "role": "user", "content": "\\ud800"}',
         "content"),
        # valid ISO times whose UTC instant lies outside years 1-9999: reading them back breaks every training run
        (json.dumps(good(timestamp="9999-12-31T23:59:59-14:00")).encode(), "timestamp"),
        (json.dumps(good(timestamp="0001-01-01T00:00:00+14:00")).encode(), "timestamp"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(value, reason):
    result = parse_event(value, b"acme:c1")
    assert isinstance(result, Rejection)
    assert reason in result.reason


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_deeply_nested_metadata_is_refused_before_anything_is_sent():
    result = parse_event(json.dumps(good(metadata=nested(300))).encode(), b"acme:c1")

    assert isinstance(result, Rejection) and "metadata" in result.reason and "deep" in result.reason
    assert encode_event(ChatEvent(**good(metadata=nested(31))))  # a reasonable depth still travels


@pytest.mark.parametrize("fields", [
    {"content": "\u0001" * 199_000},  # within the character limit, six bytes each as JSON
    {"metadata": {"pasted": "x" * 5_000_000}},
])
def test_an_event_over_kafkas_message_size_is_refused_not_retried(fields):
    result = parse_event(json.dumps(good(**fields)).encode(), b"acme:c1")

    assert isinstance(result, Rejection) and "bytes" in result.reason


def test_timestamps_are_stored_in_utc():
    event = ChatEvent(**good(timestamp="2026-01-02T03:04:05+02:00"))
    assert event.timestamp.isoformat() == "2026-01-02T01:04:05+00:00"


def test_key_must_keep_the_conversation_on_one_partition():
    result = parse_event(json.dumps(good()).encode(), b"other")
    assert isinstance(result, Rejection) and "acme:c1" in result.reason


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.none(), st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                       st.dictionaries(st.sampled_from(sorted(ChatEvent.model_fields)),
                                       st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                                 st.lists(st.integers(), max_size=2)))
                       .map(lambda fields: json.dumps({**good(), **fields}).encode())),
       key=st.one_of(st.none(), st.just(b"acme:c1"), st.binary(max_size=10)))
def test_any_record_becomes_an_event_or_a_reason(value, key):
    result = parse_event(value, key)
    assert isinstance(result, ChatEvent) or (isinstance(result, Rejection) and result.reason)


@pytest.mark.parametrize("field", ["\x00", "bad\ud800name"])
def test_a_reason_quoting_a_nul_or_a_lone_surrogate_is_made_storable(field):
    """Found by the stream fuzz test: such a reason failed its own database write, and the batch retried forever."""
    payload = json.dumps({"tenant": "t", "conversation_id": "c", "turn_index": 0, "role": "user", "content": "hi",
                          field: 1}).encode()
    rejection = parse_event(payload, b"t:c")
    assert isinstance(rejection, Rejection)
    reason = storable_reason(rejection.reason)
    assert "\x00" not in reason
    reason.encode("utf-8")  # no lone surrogate left
    assert reason.startswith("invalid chat event")


def test_storable_reason_escapes_what_postgres_and_utf8_refuse():
    assert storable_reason("field \x00 and \ud800 here") == "field \\x00 and \\ud800 here"
