"""Feedback signals: what the topic accepts, and how fusion turns a follow-up label and signals into a target."""

from __future__ import annotations

import json

import pytest

from tacit.core.domain import SIGNAL, ChatEvent, SignalEvent
from tacit.core.fusion import CONFLICT, FOLLOWUP, SIGNALS, FusionRule, fuse
from tacit.core.privacy import Privacy
from tacit.ingest.events import Rejection, encode_event, parse_event, with_record_id


def signal(**fields) -> SignalEvent:
    return SIGNAL.validate_python({"tenant": "acme", "conversation_id": "c1", "message_turn": 1, **fields})


def raw(**fields) -> bytes:
    return json.dumps({"tenant": "acme", "conversation_id": "c1", "message_turn": 1, **fields}).encode()


@pytest.mark.parametrize("fields", [
    {"signal": "thumbs", "up": False, "comment": "wrong language"}, {"signal": "reaction", "name": "+1"},
    {"signal": "regenerate", "replacement_turn": 3}, {"signal": "edit", "text": "in Python please"},
    {"signal": "copy"}, {"signal": "rating", "score": 9, "scale": 10},
])
def test_every_kind_round_trips_through_the_topic(fields):
    event = signal(**fields)
    key, value = encode_event(event)

    assert key == b"acme:c1" and parse_event(value, key) == event
    assert {name: value for name, value in fields.items() if name != "signal"}.items() <= event.detail.items()
    assert not {"event_id", "tenant", "conversation_id", "message_turn", "timestamp", "signal"} & event.detail.keys()


@pytest.mark.parametrize(("fields", "reason"), [
    ({"signal": "thumbs"}, "up: Field required"),
    ({"signal": "rating", "score": 7, "scale": 5}, "over its scale"),
    ({"signal": "rating", "score": 3, "scale": 4}, "scale"),
    ({"signal": "reaction", "name": ""}, "name"),
    ({"signal": "sigh"}, "does not match any of the expected tags"),
    ({"signal": "copy", "message_turn": -1}, "message_turn"),
    ({"signal": "edit", "text": "a\u0000b"}, "NUL"),
    ({"signal": "copy", "role": "user"}, "role"),
])
def test_malformed_signals_are_dead_letters_with_a_reason(fields, reason):
    result = parse_event(raw(**fields), b"acme:c1")

    assert isinstance(result, Rejection) and result.reason.startswith("invalid feedback signal")
    assert reason in result.reason


def test_a_signal_is_refused_under_another_conversations_key():
    result = parse_event(raw(signal="copy"), b"acme:c2")

    assert isinstance(result, Rejection) and "tenant:conversation_id" in result.reason


def test_a_signal_without_an_id_is_named_by_its_record_and_one_with_an_id_keeps_it():
    anonymous = parse_event(raw(signal="copy"), b"acme:c1")
    named = parse_event(raw(signal="copy", event_id="mine"), b"acme:c1")

    assert with_record_id(anonymous, "chat-events", 2, 40).event_id == "chat-events:2:40"
    assert with_record_id(named, "chat-events", 2, 40).event_id == "mine"


def test_chat_events_still_parse_as_chat_events():
    event = ChatEvent(tenant="acme", conversation_id="c1", turn_index=0, role="user", content="hi")

    assert parse_event(encode_event(event)[1], b"acme:c1") == event


def test_free_text_of_a_signal_is_redacted_like_a_message():
    privacy = Privacy(redact_pii=True, user_id_secret=None)
    edit = privacy.apply(signal(signal="edit", text="mail me at ann@example.com"))
    thumbs = privacy.apply(signal(signal="thumbs", up=True, comment="ann@example.com"))
    copy = signal(signal="copy")

    assert edit.text == "mail me at [EMAIL]" and thumbs.comment == "[EMAIL]" and privacy.apply(copy) is copy


# ------------------------------------------------------------------------------------------------ fusion

DOWN, UP = {"signal": "thumbs", "up": False}, {"signal": "thumbs", "up": True}


def signals(*kinds: dict) -> list[SignalEvent]:
    return [signal(**kind) for kind in kinds]


def test_no_signal_leaves_the_followup_level():
    assert fuse(5, []).level == 5 and fuse(5, []).decided_by == FOLLOWUP


@pytest.mark.parametrize(("kind", "level", "expected"), [
    (DOWN, 3, 2), (DOWN, 1, 1), (DOWN, 2, 2),
    ({"signal": "regenerate"}, 3, 2), ({"signal": "edit", "text": "again"}, 3, 2),
    ({"signal": "rating", "score": 2, "scale": 5}, 3, 2), ({"signal": "rating", "score": 4, "scale": 10}, 3, 2),
    ({"signal": "reaction", "name": "-1"}, 3, 2),
    (UP, 3, 4), (UP, 5, 5), (UP, 4, 4),
    ({"signal": "rating", "score": 4, "scale": 5}, 3, 4), ({"signal": "rating", "score": 7, "scale": 10}, 3, 4),
    ({"signal": "reaction", "name": "+1"}, 3, 4),
])
def test_a_signal_pushes_a_neutral_or_agreeing_level_to_its_side(kind, level, expected):
    fused = fuse(level, signals(kind))

    assert (fused.level, fused.decided_by) == (expected, SIGNALS)
    change = "confirmed" if level == expected else f"-> {expected}"
    assert fused.reason.startswith(f"follow-up {level} {change} by")


@pytest.mark.parametrize("kind", [{"signal": "rating", "score": 3, "scale": 5},
                                  {"signal": "rating", "score": 6, "scale": 10},
                                  {"signal": "reaction", "name": "eyes"}])
def test_signals_that_say_neither_leave_the_level(kind):
    fused = fuse(3, signals(kind))

    assert (fused.level, fused.decided_by, fused.reason) == (3, FOLLOWUP, "follow-up 3; no signal")


def test_copy_counts_only_when_given_a_weight():
    rule = FusionRule(weights={**FusionRule().weights, "copy": 1.0})

    assert fuse(3, signals({"signal": "copy"})).level == 3 and fuse(3, signals({"signal": "copy"}), rule).level == 4


def test_signals_that_cancel_out_leave_the_level_and_say_so():
    fused = fuse(3, signals(UP, DOWN))

    assert (fused.level, fused.decided_by, fused.reason) == (3, FOLLOWUP, "follow-up 3; signals cancel out")


def test_the_majority_of_reactions_decides():
    fused = fuse(3, signals({"signal": "reaction", "name": "+1"}, {"signal": "reaction", "name": "+1"},
                            {"signal": "reaction", "name": "-1"}))

    assert fused.level == 4 and fused.reason == "follow-up 3 -> 4 by reaction +1, reaction +1"


@pytest.mark.parametrize(("conflict", "expected"), [("signals", 2), ("followup", 5), ("neutral", 3)])
def test_a_conflict_is_kept_with_a_reason_and_decided_as_configured(conflict, expected):
    fused = fuse(5, signals(DOWN, {"signal": "regenerate"}), FusionRule(conflict=conflict))

    assert (fused.level, fused.decided_by) == (expected, CONFLICT)
    assert fused.reason == f"follow-up 5 against thumbs down, regenerate; {conflict} win: {expected}"


def test_a_positive_signal_against_a_correction_is_a_conflict():
    fused = fuse(2, signals({"signal": "rating", "score": 10, "scale": 10}))

    assert (fused.level, fused.decided_by) == (4, CONFLICT) and "rating 10/10" in fused.reason


def test_a_weight_of_zero_turns_a_kind_off():
    rule = FusionRule(weights={**FusionRule().weights, "regenerate": 0.0})

    assert fuse(3, signals({"signal": "regenerate"}), rule).level == 3
