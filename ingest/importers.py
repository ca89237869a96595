"""Readers that turn log files into chat events, streaming (constant memory, gzip or plain).

Tacit's own format is one conversation per JSONL line:
``{"conversation_id": str, "user_id": str?, "model": str?, "messages": [{"role", "content"}, ...]}``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from tacit.domain import ChatEvent, Role, describe_validation_error


@dataclass
class ImportReport:
    """What an import read, and what it skipped and why (nothing is dropped silently)."""

    conversations: int = 0
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def open_text(path: Path) -> IO[str]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def event_id(tenant: str, conversation_id: str, turn_index: int) -> str:
    """Deterministic, so replaying a file twice produces the same events (and no new rows)."""
    return hashlib.sha1(f"{tenant}\x00{conversation_id}\x00{turn_index}".encode()).hexdigest()


def conversation_events(record: dict, tenant: str) -> list[ChatEvent]:
    """One conversation record -> its chat events; raises ValueError with a reason if it is unusable."""
    conversation_id = record.get("conversation_id")
    messages = record.get("messages")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise ValueError("missing conversation_id")
    if not isinstance(messages, list) or not messages:
        raise ValueError("missing or empty messages")
    metadata = {"source": record["source"]} if isinstance(record.get("source"), str) else {}
    events = []
    for turn, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"message {turn} is not an object")
        try:
            events.append(ChatEvent(
                event_id=event_id(tenant, conversation_id, turn),
                tenant=tenant,
                conversation_id=conversation_id,
                turn_index=turn,
                role=Role(message.get("role")),
                content=message.get("content"),
                user_id=record.get("user_id"),
                assistant_model=record.get("model") if message.get("role") == "assistant" else None,
                metadata=metadata,
            ))
        except ValueError as exc:
            reason = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ValueError(f"message {turn}: {reason}") from exc
    return events


def read_conversations(path: Path, tenant: str, report: ImportReport) -> Iterator[list[ChatEvent]]:
    """Yield each usable conversation's events; count the rest in ``report.skipped`` by reason."""
    with open_text(path) as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("line is not a JSON object")
                events = conversation_events(record, tenant)
            except (json.JSONDecodeError, ValueError) as exc:
                reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc).split(":")[0]
                report.skipped[reason] += 1
                continue
            report.conversations += 1
            report.events += len(events)
            yield events
