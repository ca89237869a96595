"""Domain types shared by every stage: chat events, satisfaction levels, feedback candidates, labels."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)


class Role(str, enum.Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class SatisfactionLevel(enum.IntEnum):
    """How satisfied the user was with the assistant's reply, read from their follow-up (WildReward)."""

    REJECTION = 1  # explicitly rejects or criticises the reply
    ERROR_CORRECTION = 2  # points out a mistake, a missed constraint, the wrong language, broken code
    NEUTRAL = 3  # no clear attitude: a new or unrelated question, a plain continuation
    POSITIVE_ENGAGEMENT = 4  # explicit positive framing and a meaningful extension
    SATISFACTION = 5  # thanks, solved, "that's all I need"


MAX_CONTENT_CHARS = 200_000
# Kafka's default message.max.bytes is 1 MiB; an event over it can never be sent, however often it is retried.
MAX_EVENT_BYTES = 1_000_000
MAX_METADATA_DEPTH = 32  # JSON serialisers stop near 255 levels; nothing real nests this deep

# A tenant name: also the first part of every Kafka key (``tenant:conversation``), hence no colon.
Tenant = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]


class KeyedEvent(BaseModel):
    """What every record on the chat-events topic carries: its id, its conversation (the Kafka key), its time.

    The validators here are the topic's limits, shared by chat events and feedback signals: whatever
    PostgreSQL cannot store or Kafka cannot carry is refused at the door, not as a failing batch later.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=128)
    tenant: Tenant
    conversation_id: str = Field(min_length=1, max_length=256)

    @field_validator("timestamp", check_fields=False)
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """In UTC (a naive time is taken as UTC). A time whose UTC instant falls outside years 1-9999 is
        refused: PostgreSQL would store it, but no later read of it (training, relabel) could."""
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        try:
            return aware.astimezone(UTC)
        except OverflowError:
            raise ValueError("must lie between the years 1 and 9999 in UTC") from None

    @model_validator(mode="after")
    def _storable(self) -> KeyedEvent:
        """Reject what PostgreSQL cannot store or Kafka carry, here rather than as a failing batch later."""
        characters = 0
        for text in _strings(tuple(vars(self).values())):  # the field values, without a costly model_dump
            if "\x00" in text:
                raise ValueError("text must not contain NUL characters")
            text.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
            characters += len(text)
        # JSON takes at most six bytes a character (\uXXXX): only a large event is serialised to measure it.
        if 6 * characters + 4096 > MAX_EVENT_BYTES and (size := len(self.model_dump_json())) > MAX_EVENT_BYTES:
            raise ValueError(f"the event is {size:,} bytes as JSON, over the {MAX_EVENT_BYTES:,} a Kafka message "
                             "may carry; shorten its content or metadata")
        return self

    @property
    def key(self) -> str:
        """Kafka key: every message of a conversation lands on the same partition, in order."""
        return f"{self.tenant}:{self.conversation_id}"


class ChatEvent(KeyedEvent):
    """One message of one conversation, as it travels on the chat-events topic.

    ``turn_index`` orders messages within a conversation and, with tenant and conversation id, is the
    message's natural key: replaying the same message twice is harmless.
    """

    turn_index: int = Field(ge=0, le=1_000_000)
    role: Role
    content: str = Field(max_length=MAX_CONTENT_CHARS)
    user_id: str | None = Field(None, max_length=256)
    assistant_model: str | None = Field(None, max_length=256)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    language: str | None = Field(None, max_length=32)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _shallow(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_METADATA_DEPTH:
            raise ValueError(f"nested too deep (more than {MAX_METADATA_DEPTH} levels)")
        return value


# ------------------------------------------------------------------------------------------ feedback signals

MAX_COMMENT_CHARS = 10_000


class SignalEvent(KeyedEvent):
    """A user's signal about one assistant message, on the chat-events topic next to the messages.

    The message is named by its turn index, its natural key within the conversation, so a signal can be
    stored before the message arrives and joined to it when read. ``event_id`` tells two signals on one
    message apart (two thumbs from two readers of a shared chat) and makes a redelivered one a duplicate.
    """

    message_turn: int = Field(ge=0, le=1_000_000, description="Turn index of the message it is about.")
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def detail(self) -> dict[str, Any]:
        """The fields of this kind of signal alone (``up``, ``score``...), as stored next to its kind."""
        return self.model_dump(mode="json", exclude={*SignalEvent.model_fields, "signal"})


class Thumbs(SignalEvent):
    signal: Literal["thumbs"]
    up: bool
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class Reaction(SignalEvent):
    signal: Literal["reaction"]
    name: str = Field(min_length=1, max_length=64, description="The reaction's name, e.g. an emoji's.")


class Regenerate(SignalEvent):
    """The user asked for another answer; ``replacement_turn`` is that answer's turn, if the app knows it."""

    signal: Literal["regenerate"]
    replacement_turn: int | None = Field(None, ge=0, le=1_000_000)


class Edit(SignalEvent):
    """The user edited their message and sent it again (``text``), in place of answering this message."""

    signal: Literal["edit"]
    text: str = Field(max_length=MAX_CONTENT_CHARS)


class Copy(SignalEvent):
    signal: Literal["copy"]


class Rating(SignalEvent):
    signal: Literal["rating"]
    score: int = Field(ge=1, le=10)
    scale: Literal[5, 10]
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)

    @model_validator(mode="after")
    def _within_scale(self) -> Rating:
        if self.score > self.scale:
            raise ValueError(f"score {self.score} is over its scale of {self.scale}")
        return self


Signal = Annotated[Thumbs | Reaction | Regenerate | Edit | Copy | Rating, Field(discriminator="signal")]
SIGNAL = TypeAdapter(Signal)


def _depth(value: Any, limit: int = MAX_METADATA_DEPTH + 1) -> int:
    """Levels of nested objects and lists in ``value``, counted up to ``limit`` (no deeper recursion)."""
    if limit <= 0 or not isinstance(value, (dict, list)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(item, limit - 1) for item in items), default=0)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def describe_validation_error(error: ValidationError) -> str:
    """One line a user can act on, e.g. ``turn_index: Input should be >= 0; role: Field required``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    turn_index: int


@dataclass(frozen=True)
class FeedbackCandidate:
    """An assistant reply followed by a user message: the follow-up carries the feedback on the reply."""

    tenant: str
    conversation_id: str
    user_id: str | None
    history: tuple[Message, ...]  # messages before the query, oldest first
    query: Message | None  # the user message the assistant answered (None if the reply opened the chat)
    response: Message
    followup: Message


@dataclass(frozen=True)
class Label:
    """A labeler's rating of one reply. ``probabilities`` are P(level 1..5) as the labeler saw them (its
    version says whether they are calibrated), kept when refinement, validation or mining change the level,
    so the evidence behind every stored level stays with it; None for labelers without probabilities."""

    level: SatisfactionLevel
    confidence: float
    reason: str
    labeler_id: str
    labeler_version: str
    stage: str = field(default="raw")
    probabilities: tuple[float, ...] | None = None


# Label stages: every candidate keeps its labeler's ``raw`` row and gets one derived row, ``refined`` (fit to
# train on), ``filtered`` (a filter left it out) or ``pending`` (a neutral item waiting for later follow-ups
# that may mine it a level).
RAW = "raw"
REFINED = "refined"
FILTERED = "filtered"
PENDING = "pending"
DERIVED_STAGES = (REFINED, FILTERED, PENDING)


ConversationKey = tuple[str, str]  # tenant, conversation id
Rated = tuple[FeedbackCandidate, Label]  # a row to store


@dataclass(frozen=True)
class Followup:
    """One follow-up as mining reads it: where it is, what the user said, and the labeler's raw level."""

    conversation: ConversationKey
    labeler_id: str
    turn: int
    text: str
    level: SatisfactionLevel
    confidence: float

    @classmethod
    def of(cls, candidate: FeedbackCandidate, raw: Label) -> Followup:
        return cls((candidate.tenant, candidate.conversation_id), raw.labeler_id,
                   candidate.followup.turn_index, candidate.followup.content, raw.level, raw.confidence)

    @property
    def positive(self) -> bool:
        return self.level >= SatisfactionLevel.POSITIVE_ENGAGEMENT


@dataclass(frozen=True)
class Stored:
    """A pending item read back from PostgreSQL: its reply's turn (with the follow-up's, the row's key)."""

    response_turn: int
    followup: Followup
    label: Label
