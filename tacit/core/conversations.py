"""The conversation window: what the stream remembers of each conversation, and when a follow-up is found.

Pure logic, no Faust: the agent keeps one ``ConversationWindow`` per ``tenant:conversation`` in a table and
calls :func:`observe` for every event.

Ordering rule (deterministic whatever the arrival order): a message is identified by its turn index. A turn
already in the window is a duplicate: the window keeps the first text it saw, and the pairs the turn belongs
to are emitted again. That is what makes a crash harmless: the table's changelog may already hold a turn
whose batch never reached Postgres, and its redelivery must still produce the label (the sink's upsert
makes a repeat change nothing). A turn older than everything in a full window is stale: the window cannot
pair it, but a crash can make a stale turn unpaired in Postgres too (the changelog held later turns whose
batch was stored, the redelivered early turns' batch was not), so the worker pairs stale turns from the
stored conversation with :func:`candidates_from_stored`. So is a duplicate that is the oldest turn of a full
window: its reply is older than the window, and was redelivered as a stale turn in an earlier batch, where
this follow-up was not yet there to pair it with. Otherwise the message is inserted in turn order, and a feedback
candidate is emitted for every (assistant at t, user at t + 1) pair that this message completes: if the
assistant reply arrives after its follow-up, the pair is emitted when the reply arrives.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tacit.core.domain import ChatEvent, FeedbackCandidate, Message, Role


class Outcome(str, enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True)
class ConversationWindow:
    """The most recent ``capacity`` messages of one conversation, in turn order."""

    messages: tuple[Message, ...] = ()
    user_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "messages": [[m.turn_index, m.role.value, m.content] for m in self.messages],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> ConversationWindow:
        if not raw:
            return cls()
        messages = tuple(Message(role=Role(role), content=content, turn_index=turn)
                         for turn, role, content in raw["messages"])
        return cls(messages=messages, user_id=raw.get("user_id"))

    def turn(self, index: int) -> Message | None:
        return self._by_turn.get(index)

    @cached_property
    def _by_turn(self) -> dict[int, Message]:
        """Built once per window: every event looks up to seven turns in it."""
        return {m.turn_index: m for m in self.messages}


@dataclass(frozen=True)
class Observation:
    window: ConversationWindow
    outcome: Outcome
    candidates: tuple[FeedbackCandidate, ...] = field(default=())


def observe(window: ConversationWindow, event: ChatEvent, capacity: int) -> Observation:
    """Add one event to the window; return the new window and the candidates it completes."""
    at_capacity = len(window.messages) >= capacity
    oldest = window.messages[0].turn_index if window.messages else None
    if window.turn(event.turn_index) is not None:
        if at_capacity and event.turn_index == oldest:  # its reply left the window: pair it as a stale turn
            return Observation(window, Outcome.STALE)
        return Observation(window, Outcome.DUPLICATE, _candidates(lambda _: window, event))
    if at_capacity and event.turn_index < oldest:
        return Observation(window, Outcome.STALE)

    message = Message(role=event.role, content=event.content, turn_index=event.turn_index)
    ordered = sorted((*window.messages, message), key=lambda m: m.turn_index)
    full = ConversationWindow(messages=tuple(ordered), user_id=window.user_id or event.user_id)
    kept = ConversationWindow(messages=tuple(ordered[-capacity:]), user_id=full.user_id)
    return Observation(kept, Outcome.ACCEPTED, _candidates(lambda _: full, event))


def candidates_from_stored(stored: Sequence[Message], user_id: str | None, event: ChatEvent,
                           capacity: int) -> tuple[FeedbackCandidate, ...]:
    """The candidates of a stale ``event``, paired with the conversation's ``stored`` messages around it.

    Each pair gets the window it would have met in order: the ``capacity`` messages before its follow-up,
    then the follow-up. The first text given for a turn wins, as in the window: list stored messages first.
    """
    by_turn: dict[int, Message] = {}
    for m in (*stored, Message(event.role, event.content, event.turn_index)):
        by_turn.setdefault(m.turn_index, m)
    ordered = sorted(by_turn.values(), key=lambda m: m.turn_index)

    def window_until(followup_turn: int) -> ConversationWindow:
        before = [m for m in ordered if m.turn_index < followup_turn][-capacity:]
        followup = [m for m in ordered if m.turn_index == followup_turn]
        return ConversationWindow(messages=(*before, *followup), user_id=user_id or event.user_id)

    return _candidates(window_until, event)


def _candidates(window_until: Callable[[int], ConversationWindow],
                event: ChatEvent) -> tuple[FeedbackCandidate, ...]:
    """The pairs ``event``'s turn belongs to: as the follow-up, and as the reply; each looked up in the
    window ``window_until`` gives for the pair's follow-up turn."""
    return tuple(
        candidate
        for reply_turn in (event.turn_index, event.turn_index - 1)
        if (candidate := _candidate(window_until(reply_turn + 1), event, reply_turn)) is not None
    )


def _candidate(window: ConversationWindow, event: ChatEvent, reply_turn: int) -> FeedbackCandidate | None:
    """The candidate for (assistant at ``reply_turn``, user at ``reply_turn + 1``) if both are present."""
    response = window.turn(reply_turn)
    followup = window.turn(reply_turn + 1)
    if response is None or followup is None:
        return None
    if response.role is not Role.ASSISTANT or followup.role is not Role.USER:
        return None
    query = window.turn(reply_turn - 1)
    if query is not None and query.role is not Role.USER:
        query = None
    before = query.turn_index if query else reply_turn
    history = tuple(m for m in window.messages if m.turn_index < before)
    return FeedbackCandidate(
        tenant=event.tenant,
        conversation_id=event.conversation_id,
        user_id=window.user_id,
        history=history,
        query=query,
        response=response,
        followup=followup,
    )
