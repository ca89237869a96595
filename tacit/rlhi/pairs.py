"""Re-attempt preference pairs: the reply a user corrected, and the assistant's next reply they accepted.

RLHI's "re-attempts with feedback": when a follow-up rejects or corrects a reply (level 1-2) and the reply
right after that follow-up is then accepted (level 4-5), the accepted reply is *chosen* and the corrected
one *rejected*, for the prompt history + original query + the user's feedback. Only an immediate retry
counts: anything said in between would make the two replies answers to different prompts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import groupby
from operator import attrgetter

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from tacit.core.db import FeedbackRow, MessageRow, PreferencePairRow
from tacit.core.domain import Message, Role

REJECTED_LEVELS = (1, 2)
ACCEPTED_LEVELS = (4, 5)
SOURCE = "reattempt"


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
    prompt: tuple[Message, ...]  # history, the original query, then the user's feedback
    chosen: Message
    rejected: Message
    chosen_rating: Rating
    rejected_rating: Rating


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
            pairs.append(PreferencePair(tenant, conversation_id, user_id, (*messages[:position], feedback),
                                        retry, rejected, chosen_rating, rejected_rating))
    return pairs


# ------------------------------------------------------------------------------------------------ storage


def build_pairs(engine: Engine, tenant: str | None = None, stages: tuple[str, ...] = ("raw",)) -> int:
    """Derive every re-attempt pair from the stored labels and upsert it; returns how many there are.

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
    if pairs:
        with engine.begin() as connection:
            connection.execute(UPSERT, [_row(pair) for pair in pairs])
    return len(pairs)


ConversationKey = tuple[str, str]  # (tenant, conversation id)


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
        "source": SOURCE,
        "rejected_turn": pair.rejected.turn_index,
        "feedback_turn": pair.prompt[-1].turn_index,
        "chosen_turn": pair.chosen.turn_index,
        "prompt": [{"role": message.role.value, "content": message.content} for message in pair.prompt],
        "chosen": pair.chosen.content,
        "rejected": pair.rejected.content,
        "provenance": {"rejected": asdict(pair.rejected_rating), "chosen": asdict(pair.chosen_rating)},
    }


def _upsert():
    new = insert(PreferencePairRow).excluded
    return insert(PreferencePairRow).on_conflict_do_update(
        constraint="uq_preference_pairs_key",
        set_={column: getattr(new, column) for column in
              ("user_id", "feedback_turn", "prompt", "chosen", "rejected", "provenance")} | {"updated_at": func.now()},
    )


UPSERT = _upsert()  # by the natural key; also used by tacit.rlhi.ranking
