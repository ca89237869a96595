"""Preference pairs ranked by the served reward model: among replies to one prompt, the best against the worst.

RLHI's second source of pairs. Users often get several replies to the same prompt: regenerations, sibling
branches of a tree (OpenAssistant), or the same first question asked in different conversations. The
running scoring service rates each reply in its context, and the highest-rated one becomes *chosen*, the
lowest-rated *rejected*. A pair whose rewards differ by less than a margin is left out: the reward model
cannot tell those replies apart, and DPO on a coin flip only adds noise.

Replies answer the same prompt when tenant and *normalised* prompt (every earlier message, roles
included, compared after Unicode NFKC, case folding and whitespace collapsing) are identical; a SHA-256 of
that prompt names the group, and is the pair's ``conversation_id`` (``prompt:<hex>``), because its two
replies may come from different conversations. Their real conversations and turns are the provenance.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine

from tacit.core.db import MessageRow
from tacit.core.domain import Role
from tacit.model.schema import MAX_HISTORY_TURNS, MAX_ITEMS, ChatItem, Item, ScoreResponse, Turn
from tacit.rlhi.pairs import UPSERT

SOURCE = "reward_model"


class Scorer(Protocol):
    """What ranking needs of :class:`tacit.model.client.ScoringClient`."""

    def score(self, items: Sequence[Item]) -> ScoreResponse: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    origin: dict[str, Any]  # where it came from, e.g. {"conversation_id", "turn"} or {"policy", "sample"}


@dataclass(slots=True)
class PromptGroup:
    """Replies to one prompt (history, then the user query: the last message)."""

    tenant: str
    prompt: tuple[Turn, ...]
    user_id: str | None
    candidates: list[Candidate] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)

    @property
    def key(self) -> str:
        return prompt_key(self.prompt)

    def add(self, candidate: Candidate) -> None:
        """Identical replies (after normalising) are one candidate: they can only tie."""
        text = _normalise(candidate.text)
        if text not in self._seen:
            self._seen.add(text)
            self.candidates.append(candidate)


@dataclass(frozen=True, slots=True)
class RankedPair:
    group: PromptGroup
    chosen: Candidate
    rejected: Candidate
    chosen_reward: float
    rejected_reward: float
    model_version: int | None


def prompt_key(prompt: Sequence[Turn]) -> str:
    digest = hashlib.sha256()
    for turn in prompt:
        digest.update(f"{turn.role.value}\x1f{_normalise(turn.content)}\x1e".encode())
    return f"prompt:{digest.hexdigest()}"


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def best_and_worst(group: PromptGroup, rewards: Sequence[float], margin: float) -> tuple[int, int] | None:
    """Indices of the highest- and lowest-rated candidates, or None when they are within ``margin``."""
    best = max(range(len(rewards)), key=rewards.__getitem__)
    worst = min(range(len(rewards)), key=rewards.__getitem__)
    return (best, worst) if rewards[best] - rewards[worst] >= margin and best != worst else None


def rank(scorer: Scorer, groups: Iterable[PromptGroup], margin: float) -> Iterator[RankedPair]:
    """Score every group with at least two candidates and yield its best-versus-worst pair.

    A group is never split across requests, so both rewards of a pair come from the same model version
    even while the service swaps models; groups are packed into requests of up to ``MAX_ITEMS`` texts.
    """
    for batch in _batches((group for group in groups if len(group.candidates) >= 2), MAX_ITEMS):
        response = scorer.score([_item(group.prompt, c.text) for group in batch for c in group.candidates])
        start = 0
        for group in batch:
            rewards = response.rewards[start:start + len(group.candidates)]
            start += len(group.candidates)
            chosen = best_and_worst(group, rewards, margin)
            if chosen is not None:
                best, worst = chosen
                yield RankedPair(group, group.candidates[best], group.candidates[worst], rewards[best],
                                 rewards[worst], response.model_version)


def _batches(groups: Iterable[PromptGroup], max_items: int) -> Iterator[list[PromptGroup]]:
    batch: list[PromptGroup] = []
    size = 0
    for group in groups:
        if batch and size + len(group.candidates) > max_items:
            yield batch
            batch, size = [], 0
        batch.append(group)
        size += len(group.candidates)
    if batch:
        yield batch


def _item(prompt: Sequence[Turn], response: str) -> ChatItem:
    """The service reads at most ``MAX_HISTORY_TURNS`` earlier turns; it truncates from the left anyway."""
    *history, query = prompt
    return ChatItem(history=history[-MAX_HISTORY_TURNS:], query=query.content, response=response)


# ------------------------------------------------------------------------------------------------ storage


def stored_groups(engine: Engine, tenant: str | None = None) -> list[PromptGroup]:
    """Every stored prompt that an assistant answered, with its distinct replies, in first-seen order.

    A group keeps at most ``MAX_ITEMS`` replies (the first seen), so that it fits in one request.
    """
    groups: dict[tuple[str, str], PromptGroup] = {}
    for (conv_tenant, conversation_id), rows in _conversations(engine, tenant):
        user_id = next((row.user_id for row in rows if row.user_id is not None), None)
        prompt: list[Turn] = []
        for row in rows:
            role = Role(row.role)
            if role is Role.ASSISTANT and prompt and prompt[-1].role is Role.USER:
                group = groups.setdefault((conv_tenant, prompt_key(prompt)),
                                          PromptGroup(conv_tenant, tuple(prompt), user_id))
                if group.user_id != user_id:
                    group.user_id = None  # replies of several users: the pair belongs to none of them
                if len(group.candidates) < MAX_ITEMS:
                    group.add(Candidate(row.content, {"conversation_id": conversation_id, "turn": row.turn_index}))
            prompt.append(Turn(role=role, content=row.content))
    return list(groups.values())


def _conversations(engine: Engine, tenant: str | None) -> Iterator[tuple[tuple[str, str], list]]:
    statement = (
        select(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index, MessageRow.role,
               MessageRow.content, MessageRow.user_id)
        .order_by(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index)
    )
    if tenant is not None:
        statement = statement.where(MessageRow.tenant == tenant)
    with engine.connect() as connection:
        rows = connection.execution_options(stream_results=True).execute(statement)
        for key, group in groupby(rows, key=attrgetter("tenant", "conversation_id")):
            yield key, list(group)


def store_pairs(engine: Engine, pairs: Iterable[RankedPair], source: str = SOURCE) -> int:
    """Upsert ranked pairs; one per prompt and source, so a re-run rewrites the same rows."""
    rows = [_row(pair, source) for pair in pairs]
    if rows:
        with engine.begin() as connection:
            connection.execute(UPSERT, rows)
    return len(rows)


def _row(pair: RankedPair, source: str) -> dict[str, Any]:
    """Every reply to a prompt sits right after it, so the reply turn is the prompt's length."""
    prompt = pair.group.prompt
    return {
        "tenant": pair.group.tenant,
        "conversation_id": pair.group.key,
        "user_id": pair.group.user_id,
        "source": source,
        "rejected_turn": len(prompt),
        "feedback_turn": len(prompt) - 1,
        "chosen_turn": len(prompt),
        "prompt": [{"role": turn.role.value, "content": turn.content} for turn in prompt],
        "chosen": pair.chosen.text,
        "rejected": pair.rejected.text,
        "provenance": {
            "model_version": pair.model_version,
            "candidates": len(pair.group.candidates),
            "chosen": {"reward": pair.chosen_reward, **pair.chosen.origin},
            "rejected": {"reward": pair.rejected_reward, **pair.rejected.origin},
        },
    }
