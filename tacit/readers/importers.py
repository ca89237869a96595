"""Read a chat-log file of any supported format as chat events, streaming (constant memory).

JSONL files may be gzipped (detected from the content); parquet files are read one batch of rows at a
time. A record that cannot be used is skipped and counted by reason, never fatal: one bad line must not
stop the import of a million good ones.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq
from pydantic import ValidationError

from tacit.core.domain import SIGNAL, ChatEvent, SignalEvent, describe_validation_error
from tacit.core.errors import TacitError
from tacit.readers.formats import FORMATS, Conversation, Skip, detect

PARQUET_BATCH_ROWS = 1024


@dataclass
class ImportReport:
    """What an import read, and what it skipped and why (nothing is dropped silently)."""

    conversations: int = 0
    events: int = 0
    signals: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def records(path: Path) -> Iterator[bytes | dict[str, Any]]:
    """Raw JSONL lines (decoded by the caller, so a bad line is one skipped record) or parquet rows."""
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            yield from batch.to_pylist()
        return
    with open_binary(path) as lines:
        try:
            yield from (line for line in lines if line.strip())
        except (EOFError, OSError, zlib.error) as error:  # a truncated or corrupt gzip stream
            raise TacitError(f"{path} is a damaged gzip file ({error}); the records before the damage were "
                             "read. Compress it again, or pass the plain JSONL.") from None


def detect_format(path: Path) -> str:
    """The format of ``path`` from the fields of its first record (or its parquet schema)."""
    if path.suffix == ".parquet":
        fields = set(pq.read_schema(path).names)
    else:
        try:
            fields = set(_decode(next(records(path), b"")))
        except Skip:
            fields = set()
    name = detect(fields)
    if name is None:
        raise TacitError(f"cannot tell the format of {path} from its first record; pass --format "
                         f"({', '.join(FORMATS)})")
    return name


def event_id(tenant: str, conversation_id: str, turn_index: int, *signal: str | int) -> str:
    """Deterministic, so replaying a file twice produces the same events (and no new rows); a signal's id
    adds what tells it apart from the message's other signals."""
    parts = (tenant, conversation_id, turn_index, *signal)
    return hashlib.sha1("\x00".join(map(str, parts)).encode()).hexdigest()


def conversation_events(conversation: Conversation, tenant: str) -> list[ChatEvent]:
    """Events of one conversation; raises :class:`Skip` when one of its messages is not a valid event."""
    received = datetime.now(UTC)  # for sources without timestamps
    metadata = {"source": conversation.source} if conversation.source else {}
    try:
        return [
            ChatEvent(
                event_id=event_id(tenant, conversation.id, turn_index),
                tenant=tenant,
                conversation_id=conversation.id,
                turn_index=turn_index,
                role=turn.role,
                content=turn.content,
                user_id=conversation.user_id,
                assistant_model=turn.model,
                timestamp=received if turn.timestamp is None else turn.timestamp,
                language=conversation.language,
                metadata=metadata,
            )
            for turn_index, turn in enumerate(conversation.turns)
        ]
    except ValidationError as exc:
        raise Skip(f"invalid event ({describe_validation_error(exc)})") from exc


# Reactions that OpenAssistant's interface shows as its thumbs up and down buttons.
THUMBS = {"+1": True, "-1": False}


def conversation_signals(conversation: Conversation, tenant: str,
                         events: list[ChatEvent]) -> list[SignalEvent]:
    """The feedback signals of a conversation's messages (one per user who reacted), timed like the message:
    OpenAssistant's thumbs become ``thumbs`` signals, its other emojis ``reaction`` signals. Raises
    :class:`Skip` when one is not a valid signal."""
    try:
        return [_signal(tenant, conversation.id, event, name, user)
                for turn, event in zip(conversation.turns, events, strict=True)
                for name, count in turn.reactions
                for user in range(count)]
    except ValidationError as exc:
        raise Skip(f"invalid signal ({describe_validation_error(exc)})") from exc


def _signal(tenant: str, conversation_id: str, event: ChatEvent, name: str, user: int) -> SignalEvent:
    return SIGNAL.validate_python({
        "event_id": event_id(tenant, conversation_id, event.turn_index, name, user),
        "tenant": tenant, "conversation_id": conversation_id, "message_turn": event.turn_index,
        "timestamp": event.timestamp,
        **({"signal": "thumbs", "up": THUMBS[name]} if name in THUMBS
           else {"signal": "reaction", "name": name}),
    })


def read_conversations(path: Path, tenant: str, report: ImportReport, format_name: str | None = None,
                       signals: bool = False) -> Iterator[list[ChatEvent | SignalEvent]]:
    """Yield each usable conversation's events; count the rest in ``report.skipped`` by reason.

    ``format_name`` is a key of :data:`tacit.readers.formats.FORMATS`; None detects it from the first record.
    With ``signals``, each conversation's feedback signals (where the format has them) follow its messages.
    """
    name = format_name or detect_format(path)
    if name not in FORMATS:
        raise TacitError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}")
    parse = FORMATS[name]
    for raw in records(path):
        try:
            parsed = [(c, conversation_events(c, tenant)) for c in parse(_decode(raw))]
            conversations = [(events, conversation_signals(c, tenant, events) if signals else [])
                             for c, events in parsed]
        except Skip as exc:
            report.skipped[str(exc)] += 1
            continue
        for events, feedback in conversations:
            report.conversations += 1
            report.events += len(events)
            report.signals += len(feedback)
            yield [*events, *feedback]


def _decode(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """A JSONL line or a parquet row -> a record, or :class:`Skip` saying why it is not one."""
    if isinstance(raw, dict):
        return raw
    try:
        record = json.loads(raw)
    except UnicodeDecodeError:
        raise Skip("not UTF-8") from None
    except json.JSONDecodeError:
        raise Skip("not JSON") from None
    except RecursionError:
        raise Skip("nested too deeply") from None
    if not isinstance(record, dict):
        raise Skip("record is not a JSON object")
    return record
