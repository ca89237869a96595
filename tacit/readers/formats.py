"""The chat-log formats ``tacit replay`` reads: each parser turns one source record into conversations.

A parser raises :class:`Skip` for a record it cannot use. Its message is a fixed reason (no per-record
values), because the importer counts skipped records by reason.

Conversation ids come from the source's own ids, prefixed with the format so that two data sets never
collide in one tenant; a record without an id gets a hash of its messages. Either way, importing the same
file again produces the same ids, and the downstream upserts make the repeat harmless.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tacit.core.domain import Role
from tacit.readers.transcripts import parse_hh_transcript


class Skip(ValueError):
    """A record that cannot be imported; the message is the reason the report counts."""


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str
    timestamp: datetime | str | int | None = None  # as the source wrote it; the chat event validates it
    model: str | None = None
    reactions: tuple[tuple[str, int], ...] = ()  # (name, how many users gave it), where the source has them


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: list[Turn]
    user_id: str | None = None
    language: str | None = None
    source: str | None = None


Parser = Callable[[dict[str, Any]], Iterator[Conversation]]

_CHAT_ROLES = {"user": Role.USER, "assistant": Role.ASSISTANT, "system": Role.SYSTEM}
_SHAREGPT_ROLES = {"human": Role.USER, "user": Role.USER, "gpt": Role.ASSISTANT, "chatgpt": Role.ASSISTANT,
                   "assistant": Role.ASSISTANT, "system": Role.SYSTEM}
_OPENAI_ROLES = {**_CHAT_ROLES, "developer": Role.SYSTEM}
_OASST_ROLES = {"prompter": Role.USER, "assistant": Role.ASSISTANT}


def _optional_text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) and value else None


def _required_text(record: Mapping[str, Any], name: str) -> str:
    value = _optional_text(record, name)
    if value is None:
        raise Skip(f"missing {name}")
    return value


def _turns(messages: Any, roles: Mapping[str, Role], *, role_key: str = "role", content_key: str = "content",
           model: str | None = None) -> list[Turn]:
    """A source's message list -> turns; ``model`` is credited with every assistant turn."""
    if not isinstance(messages, list) or not messages:
        raise Skip("no messages")
    turns = []
    for message in messages:
        if not isinstance(message, dict):
            raise Skip("message is not an object")
        name = message.get(role_key)
        role = roles.get(name) if isinstance(name, str) else None
        if role is None:
            raise Skip("unknown role")
        content = message.get(content_key)
        if not isinstance(content, str):
            raise Skip("message content is not text")
        turns.append(Turn(role, content, message.get("timestamp"), model if role is Role.ASSISTANT else None))
    return turns


def _content_id(prefix: str, turns: list[Turn]) -> str:
    """For sources without ids: the same messages always get the same id."""
    canonical = json.dumps([(turn.role.value, turn.content) for turn in turns], ensure_ascii=False)
    return f"{prefix}-{hashlib.sha1(canonical.encode()).hexdigest()}"


def tacit(record: dict[str, Any]) -> Iterator[Conversation]:
    """Tacit's own JSONL: the ids are the application's, so they are kept as they are."""
    turns = _turns(record.get("messages"), _CHAT_ROLES, model=_optional_text(record, "model"))
    yield Conversation(_optional_text(record, "conversation_id") or _content_id("tacit", turns), turns,
                       user_id=_optional_text(record, "user_id"), source=_optional_text(record, "source"))


def wildchat(record: dict[str, Any]) -> Iterator[Conversation]:
    """WildChat's users are only known by ``hashed_ip``, which is what WildReward splits by too."""
    turns = _turns(record.get("conversation"), _CHAT_ROLES, model=_optional_text(record, "model"))
    yield Conversation(f"wildchat-{_required_text(record, 'conversation_hash')}", turns,
                       user_id=_optional_text(record, "hashed_ip"),
                       language=_optional_text(record, "language"), source="wildchat")


def lmsys(record: dict[str, Any]) -> Iterator[Conversation]:
    turns = _turns(record.get("conversation"), _CHAT_ROLES, model=_optional_text(record, "model"))
    yield Conversation(f"lmsys-{_required_text(record, 'conversation_id')}", turns,
                       language=_optional_text(record, "language"), source="lmsys")


def sharegpt(record: dict[str, Any]) -> Iterator[Conversation]:
    turns = _turns(record.get("conversations"), _SHAREGPT_ROLES, role_key="from", content_key="value")
    yield Conversation(f"sharegpt-{_required_text(record, 'id')}", turns, source="sharegpt")


def openai(record: dict[str, Any]) -> Iterator[Conversation]:
    """Tool results and tool-call-only assistant messages are left out: no user read them as a reply."""
    messages = record.get("messages")
    if isinstance(messages, list):
        messages = [_with_text_content(m) for m in messages if _is_chat_message(m)]
    turns = _turns(messages, _OPENAI_ROLES)
    yield Conversation(_content_id("openai", turns), turns, source="openai")


def _is_chat_message(message: Any) -> bool:
    if not isinstance(message, dict):
        return True  # left for _turns to reject
    role = message.get("role")
    return role not in ("tool", "function") and not (role == "assistant" and message.get("content") is None)


def _with_text_content(message: Any) -> Any:
    """Content given as a list of parts keeps its text parts (images and audio are not text to rate)."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    parts = [p.get("text") for p in message["content"] if isinstance(p, dict) and p.get("type") == "text"]
    return {**message, "content": "\n".join(p for p in parts if isinstance(p, str))}


def hh(record: dict[str, Any]) -> Iterator[Conversation]:
    """The *chosen* transcript is the conversation; the rejected reply is an alternative no user saw."""
    transcript = parse_hh_transcript(_required_text(record, "chosen"))
    if not transcript:
        raise Skip("no messages")
    turns = [Turn(message.role, message.content) for message in transcript]
    yield Conversation(_content_id("hh", turns), turns, source="hh-rlhf")


def oasst(record: dict[str, Any]) -> Iterator[Conversation]:
    """Every root-to-leaf path of a tree is a conversation (ids: tree id and leaf message id).

    Sibling replies are alternatives, like regenerated answers, so each path is one conversation a user
    could have had. Paths share their beginning, so a follow-up high in the tree appears in several
    conversations; all of a tree's paths get the tree as their user, which keeps them on one side of a
    split by user (no leakage between training and holdout).
    """
    tree_id = _required_text(record, "message_tree_id")
    root = record.get("prompt")
    if not isinstance(root, dict):
        raise Skip("missing prompt")
    for path in _tree_paths(root):
        turns = _turns(list(path), _OASST_ROLES, content_key="text")
        turns = [replace(turn, reactions=_oasst_reactions(node)) for turn, node in zip(turns, path)]
        leaf_id = _required_text(path[-1], "message_id")
        yield Conversation(f"oasst-{tree_id}-{leaf_id}", turns, user_id=f"oasst-{tree_id}",
                           language=_optional_text(root, "lang"), source="oasst")


def _oasst_reactions(node: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """The emoji counts of an assistant message; names starting with ``_`` are the volunteers' task skips
    (``_skip_reply``...), not reactions to the message."""
    emojis = node.get("emojis")
    if node.get("role") != "assistant" or not isinstance(emojis, dict):
        return ()
    return tuple((name, count) for name, count in emojis.items()
                 if isinstance(name, str) and not name.startswith("_") and isinstance(count, int) and count > 0)


def _tree_paths(node: dict[str, Any], above: tuple[dict[str, Any], ...] = ()) -> Iterator[tuple[dict, ...]]:
    """Root-to-leaf paths through the messages that were not deleted."""
    path = (*above, node)
    replies = node.get("replies")
    replies = replies if isinstance(replies, list) else []
    live = [reply for reply in replies if isinstance(reply, dict) and not reply.get("deleted")]
    if not live:
        yield path
    for reply in live:
        yield from _tree_paths(reply, path)


FORMATS: dict[str, Parser] = {
    "tacit": tacit, "wildchat": wildchat, "lmsys": lmsys, "sharegpt": sharegpt, "openai": openai, "hh": hh,
    "oasst": oasst,
}

# The fields that give each format away, most specific first (Tacit's and LMSYS's overlap with others').
_SIGNATURES: list[tuple[str, frozenset[str]]] = [
    ("wildchat", frozenset({"conversation_hash", "conversation"})),
    ("lmsys", frozenset({"conversation_id", "conversation"})),
    ("tacit", frozenset({"conversation_id", "messages"})),
    ("openai", frozenset({"messages"})),
    ("sharegpt", frozenset({"conversations"})),
    ("hh", frozenset({"chosen"})),
    ("oasst", frozenset({"message_tree_id", "prompt"})),
]


def detect(fields: set[str]) -> str | None:
    """The format whose fields a record (or a parquet schema) has, if any."""
    return next((name for name, needed in _SIGNATURES if needed <= fields), None)
