"""Re-attempt preference pairs: the reply a user corrected, and the assistant's next reply they accepted.

RLHI's "re-attempts with feedback": when a follow-up rejects or corrects a reply (level 1-2) and the reply
right after that follow-up is then accepted (level 4-5), the accepted reply is *chosen* and the corrected
one *rejected*, for the prompt history + original query + the user's feedback. Only an immediate retry
counts: anything said in between would make the two replies answers to different prompts.

Regenerations give pairs directly: the reply the user regenerated away from is *rejected*, the reply that
finally replaced it (following a chain of regenerations to its end) is *chosen*, for the prompt that both
answered, provided the user did not turn against the replacement too (its own signals, fused as in
training, are not negative). The replacement is the one the regenerate signal names, else the assistant
message right after the regenerated one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import groupby, pairwise
from operator import attrgetter
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from tacit.core.db import FeedbackRow, MessageRow, PreferencePairRow
from tacit.core.domain import Message, Regenerate, Role, SatisfactionLevel, SignalEvent
from tacit.core.fusion import DEFAULT_RULE, FusionRule, describe, fuse
from tacit.core.signals import load_signals

REJECTED_LEVELS = (1, 2)
ACCEPTED_LEVELS = (4, 5)
SOURCE = "reattempt"
REGENERATION = "regeneration"


@dataclass(frozen=True, slots=True)
class Rating:
    """The label a pair relies on, kept as the pair's provenance."""

    response_turn: int
    followup_turn: int
    level: int
    confidence: float
    labeler_id: str
    labeler_version: str
    stage: str


@dataclass(frozen=True, slots=True)
class PreferencePair:
    tenant: str
    conversation_id: str
    user_id: str | None
    prompt: tuple[Message, ...]  # history, the original query, then the user's feedback if they gave one
    chosen: Message
    rejected: Message
    provenance: Mapping[str, Any]  # the labels or signals the pair came from
    source: str = SOURCE


def reattempt_pairs(
    tenant: str,
    conversation_id: str,
    user_id: str | None,
    messages: Sequence[Message],
    ratings: Mapping[int, Rating],
) -> list[PreferencePair]:
    """The re-attempt pairs of one conversation; ``messages`` oldest first, ``ratings`` by response turn."""
    pairs = []
    for position, rejected in enumerate(messages[:-2]):
        rejected_rating = ratings.get(rejected.turn_index)
        if rejected.role is not Role.ASSISTANT or rejected_rating is None:
            continue
        feedback, retry = messages[position + 1], messages[position + 2]
        chosen_rating = ratings.get(retry.turn_index)
        if (
            rejected_rating.level in REJECTED_LEVELS
            and feedback.role is Role.USER
            and feedback.turn_index == rejected_rating.followup_turn
            and retry.role is Role.ASSISTANT
            and chosen_rating is not None
            and chosen_rating.level in ACCEPTED_LEVELS
        ):
            provenance = {"rejected": asdict(rejected_rating), "chosen": asdict(chosen_rating)}
            pairs.append(PreferencePair(tenant, conversation_id, user_id, (*messages[:position], feedback),
                                        retry, rejected, provenance))
    return pairs


def regeneration_pairs(
    tenant: str,
    conversation_id: str,
    user_id: str | None,
    messages: Sequence[Message],
    signals: Mapping[int, Sequence[SignalEvent]],
    rule: FusionRule = DEFAULT_RULE,
) -> list[PreferencePair]:
    """The regeneration pairs of one conversation; ``messages`` oldest first, ``signals`` by message turn."""
    by_turn = {message.turn_index: message for message in messages}
    replaced = _replacements(messages, signals)
    pairs = []
    for rejected_turn, regenerate in replaced.items():
        chain = _chain(rejected_turn, replaced)
        chosen, rejected = by_turn.get(chain[-1]), by_turn[rejected_turn]
        if chosen is None or chosen.role is not Role.ASSISTANT or chosen is rejected:
            continue
        later = signals.get(chosen.turn_index, ())
        if fuse(SatisfactionLevel.NEUTRAL, later, rule).level < SatisfactionLevel.NEUTRAL:
            continue  # the user turned against the replacement too
        prompt = tuple(m for m in messages if m.turn_index < rejected_turn and m.turn_index not in replaced)
        if not prompt or prompt[-1].role is not Role.USER:
            continue
        provenance = {"regenerate": {"event_id": regenerate.event_id, "at": regenerate.timestamp.isoformat()},
                      "replaced_by": list(chain[1:]), "chosen_signals": [describe(signal) for signal in later]}
        pairs.append(PreferencePair(tenant, conversation_id, user_id, prompt, chosen, rejected, provenance,
                                    REGENERATION))
    return pairs


def _replacements(
    messages: Sequence[Message], signals: Mapping[int, Sequence[SignalEvent]]
) -> dict[int, Regenerate]:
    """Each regenerated assistant reply's turn -> its (first) regenerate signal, with the replacement's
    turn filled in: the signal's own, else the assistant message right after it; none: not a pair."""
    assistant = {m.turn_index for m in messages if m.role is Role.ASSISTANT}
    following = {a.turn_index: b.turn_index for a, b in pairwise(messages) if b.role is Role.ASSISTANT}
    replaced = {}
    for turn, received in sorted(signals.items()):
        regenerate = next((signal for signal in received if isinstance(signal, Regenerate)), None)
        if regenerate is None or turn not in assistant:
            continue
        replacement = regenerate.replacement_turn
        if replacement is None:
            replacement = following.get(turn)
        if replacement is not None and replacement != turn:
            replaced[turn] = regenerate.model_copy(update={"replacement_turn": replacement})
    return replaced


def _chain(turn: int, replaced: Mapping[int, Regenerate]) -> list[int]:
    """``turn``, its replacement, that one's replacement... up to the reply that stayed (a loop stops it)."""
    chain = [turn]
    while chain[-1] in replaced and (following := replaced[chain[-1]].replacement_turn) not in chain:
        chain.append(following)
    return chain


# ------------------------------------------------------------------------------------------------ storage


def build_pairs(engine: Engine, tenant: str | None = None, stages: tuple[str, ...] = ("raw",)) -> int:
    """Derive every re-attempt pair from the stored labels, and every regeneration pair from the stored
    signals, and upsert them; returns how many there are.

    Where several labelers rated one reply, the most confident rating is used. Running it again rewrites
    the same rows (natural key: conversation, source, the two reply turns).
    """
    ratings = _ratings(engine, tenant, stages)
    corrected = [key for key, rated in ratings.items() if any(r.level in REJECTED_LEVELS for r in rated.values())]
    pairs = [
        pair
        for (conv_tenant, conversation_id), user_id, messages in _conversations(engine, corrected)
        for pair in reattempt_pairs(conv_tenant, conversation_id, user_id, messages,
                                    ratings[(conv_tenant, conversation_id)])
    ]
    pairs += _regeneration_pairs(engine, tenant)
    if pairs:
        with engine.begin() as connection:
            connection.execute(UPSERT, [_row(pair) for pair in pairs])
    return len(pairs)


ConversationKey = tuple[str, str]  # (tenant, conversation id)


def _regeneration_pairs(engine: Engine, tenant: str | None) -> list[PreferencePair]:
    by_conversation: dict[ConversationKey, dict[int, list[SignalEvent]]] = {}
    stored = load_signals(engine, (tenant,) if tenant else ())
    for (conv_tenant, conversation_id, turn), received in stored.items():
        by_conversation.setdefault((conv_tenant, conversation_id), {})[turn] = received
    regenerated = [key for key, signals in by_conversation.items()
                   if any(isinstance(s, Regenerate) for received in signals.values() for s in received)]
    return [pair for key, user_id, messages in _conversations(engine, regenerated)
            for pair in regeneration_pairs(*key, user_id, messages, by_conversation[key])]


def _ratings(engine: Engine, tenant: str | None, stages: tuple[str, ...]) -> dict[ConversationKey, dict[int, Rating]]:
    statement = (
        select(FeedbackRow)
        .where(FeedbackRow.stage.in_(stages), FeedbackRow.level.in_(REJECTED_LEVELS + ACCEPTED_LEVELS))
        .order_by(FeedbackRow.confidence)  # the most confident rating of a reply is written last and wins
    )
    if tenant is not None:
        statement = statement.where(FeedbackRow.tenant == tenant)
    ratings: dict[ConversationKey, dict[int, Rating]] = {}
    with engine.connect() as connection:
        for row in connection.execute(statement):
            ratings.setdefault((row.tenant, row.conversation_id), {})[row.response_turn] = Rating(
                row.response_turn, row.followup_turn, row.level, row.confidence,
                row.labeler_id, row.labeler_version, row.stage,
            )
    return ratings


def _conversations(
    engine: Engine, keys: Sequence[ConversationKey]
) -> Iterator[tuple[ConversationKey, str | None, list[Message]]]:
    """Each conversation's user and messages, oldest first."""
    if not keys:
        return
    statement = (
        select(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index, MessageRow.role,
               MessageRow.content, MessageRow.user_id)
        .where(tuple_(MessageRow.tenant, MessageRow.conversation_id).in_(keys))
        .order_by(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement)
        for key, group in groupby(rows, key=attrgetter("tenant", "conversation_id")):
            group = list(group)
            user_id = next((row.user_id for row in group if row.user_id is not None), None)
            yield key, user_id, [Message(Role(row.role), row.content, row.turn_index) for row in group]


def _row(pair: PreferencePair) -> dict:
    return {
        "tenant": pair.tenant,
        "conversation_id": pair.conversation_id,
        "user_id": pair.user_id,
        "source": pair.source,
        "rejected_turn": pair.rejected.turn_index,
        "feedback_turn": pair.prompt[-1].turn_index,
        "chosen_turn": pair.chosen.turn_index,
        "prompt": [{"role": message.role.value, "content": message.content} for message in pair.prompt],
        "chosen": pair.chosen.content,
        "rejected": pair.rejected.content,
        "provenance": dict(pair.provenance),
    }


def _upsert():
    new = insert(PreferencePairRow).excluded
    return insert(PreferencePairRow).on_conflict_do_update(
        constraint="uq_preference_pairs_key",
        set_={column: getattr(new, column) for column in
              ("user_id", "feedback_turn", "prompt", "chosen", "rejected", "provenance")} | {"updated_at": func.now()},
    )


UPSERT = _upsert()  # by the natural key; also used by tacit.rlhi.ranking
