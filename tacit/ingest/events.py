"""Validation of raw records of the chat-events topic: every record becomes a ``ChatEvent``, a feedback
``SignalEvent`` (a record with a ``signal`` field), or a reason to reject it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from tacit.core.domain import SIGNAL, ChatEvent, KeyedEvent, SignalEvent, describe_validation_error


@dataclass(frozen=True)
class Rejection:
    reason: str


def parse_event(value: bytes | None, key: bytes | None) -> ChatEvent | SignalEvent | Rejection:
    """Decode one Kafka record; never raises, so bad data can't stop a worker.

    The key must be ``tenant:conversation_id``: the conversation table is partitioned by the record's
    partition, so a conversation spread over partitions would lose its window.
    """
    if value is None:
        return Rejection("empty record (no value)")
    try:
        payload = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejection(f"value is not UTF-8: {exc}")
    except json.JSONDecodeError as exc:
        return Rejection(f"value is not JSON: {exc}")
    if not isinstance(payload, dict):
        return Rejection(f"value must be a JSON object, got {type(payload).__name__}")
    kind = "feedback signal" if "signal" in payload else "chat event"
    try:
        event = validate_event(payload)
    except ValidationError as exc:
        return Rejection(f"invalid {kind}: {describe_validation_error(exc)}")
    except (ValueError, TypeError, RecursionError) as exc:
        return Rejection(f"invalid {kind}: {exc}")
    expected = event.key.encode()
    if key != expected:
        shown = key.decode("utf-8", "replace") if key is not None else None
        return Rejection(f"record key {shown!r} must equal tenant:conversation_id {event.key!r}")
    return event


def validate_event(payload: dict) -> ChatEvent | SignalEvent:
    """A chat event, or with a ``signal`` field (which chat events never have), a feedback signal."""
    if "signal" in payload:
        return SIGNAL.validate_python(payload)
    return ChatEvent.model_validate(payload)


def with_record_id(signal: SignalEvent, topic: str, partition: int, offset: int) -> SignalEvent:
    """A signal sent without an event id, named by its record's position.

    The id is part of a signal's natural key, and a default one would be drawn afresh on every delivery: a
    record delivered again after a crash would be stored twice. Its position is the same every time.
    (The gateway and ``tacit replay`` always write an id, so this only serves direct producers.)
    """
    if "event_id" in signal.model_fields_set:
        return signal
    return signal.model_copy(update={"event_id": f"{topic}:{partition}:{offset}"})


def storable_reason(reason: str) -> str:
    """A rejection reason PostgreSQL and Kafka headers accept.

    A reason can quote the bad record (the name of an unknown field, say), and with it a NUL character or a
    lone surrogate, which PostgreSQL text and UTF-8 refuse: the dead letter itself would fail to store, and
    its batch would be retried forever. Both are written as escapes instead.
    """
    return reason.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def encode_event(event: KeyedEvent) -> tuple[bytes, bytes]:
    """(key, value) as producers must write them."""
    return event.key.encode(), event.model_dump_json().encode()
