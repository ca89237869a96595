"""Training examples from the feedback table: what a reward model reads, the level it should predict.

With a fusion rule (``TACIT_FEEDBACK_FUSION``), each example's level is its follow-up label combined with
the feedback signals on its reply (:mod:`tacit.core.fusion`); ``fusion`` keeps the reason. With signal heads
(``TACIT_TRAIN_HEADS``, :mod:`tacit.core.heads`), examples also carry those heads' targets, and the replies
that ended their conversation join as examples of the ``continue`` head alone (no level).

A label scheme decides which satisfaction levels become ordinal classes. The split keeps every user on one
side, so the holdout measures how the model generalises to people it has never seen (WildReward: more
distinct users is what makes a better model, so per-user evaluation is the honest one).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import attrgetter
from typing import Literal

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.engine import Engine, Row
from sqlalchemy.orm import aliased

from tacit.core.db import FeedbackRow, MessageRow
from tacit.core.domain import REFINED, Message, Role, SatisfactionLevel, SignalEvent
from tacit.core.fusion import FOLLOWUP, FusionRule, fuse
from tacit.core.heads import CONTINUE, THUMBS_UP, thumbs_up_target
from tacit.core.signals import MessageKey, load_signals

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RewardExample:
    tenant: str
    conversation_id: str
    user_id: str | None
    history: tuple[Message, ...]  # messages before the query, oldest first
    query: str  # empty when the rated reply opened the conversation
    response: str
    level: int | None  # None: no follow-up label (a reply that ended its conversation), for signal heads only
    created_at: datetime | None = None  # when the rated reply was sent
    probabilities: tuple[float, ...] | None = None  # the labeler's P(level 1..5), when it gives them
    response_turn: int | None = None
    fusion: str | None = None  # why signals moved, confirmed or contested the level; None: none counted
    thumbs_up: float | None = None  # the thumbs_up head's target; None: no verdict on the reply
    continued: bool | None = None  # the continue head's target; None: not read for signal heads


def head_target(example: RewardExample, head: str) -> float | None:
    """``example``'s target for the signal head ``head``, None where it teaches that head nothing."""
    if head == THUMBS_UP:
        return example.thumbs_up
    if head == CONTINUE:
        return None if example.continued is None else float(example.continued)
    raise ValueError(f"No target for head {head!r}.")


@dataclass(frozen=True)
class Selection:
    """Which ratings a dataset holds; an empty tuple or None means no restriction on that field."""

    tenants: tuple[str, ...] = ()
    labelers: tuple[str, ...] = ()
    stages: tuple[str, ...] = (REFINED,)  # after refusal validation, without filtered items (tacit.refine.pipeline)
    levels: tuple[int, ...] = ()
    since: datetime | None = None  # the rated reply was sent at or after this
    until: datetime | None = None  # ... and before this


@dataclass(frozen=True)
class LabelScheme:
    """The satisfaction levels a model learns, in ordinal order; examples at any other level are dropped."""

    name: str
    levels: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.levels)

    def keeps(self, example: RewardExample) -> bool:
        return example.level in self.levels

    def to_class(self, level: int) -> int:
        return self.levels.index(level)

    def above(self, example: RewardExample, soft: bool) -> list[float]:
        """The ordinal targets P(class > k), k = 0..K-2: 0 or 1 from the level, or with ``soft`` and the
        labeler's probabilities, those probabilities restricted to the scheme's levels. A follow-up the
        labeler found 60% likely to be an error correction then teaches 0.6, not a certainty."""
        if soft and example.probabilities is not None:
            kept = [example.probabilities[level - 1] for level in self.levels]
            total = sum(kept)
            if total > 0:
                return [sum(kept[k + 1 :]) / total for k in range(self.num_classes - 1)]
        target = self.to_class(example.level)
        return [float(target > k) for k in range(self.num_classes - 1)]


SCHEMES: dict[str, LabelScheme] = {
    # WildFB: neutral follow-ups (three quarters of all traffic) say nothing about the reply, so drop them.
    "wildfb": LabelScheme("wildfb", (1, 2, 4, 5)),
    "five": LabelScheme("five", (1, 2, 3, 4, 5)),
}


def label_scheme(name: str) -> LabelScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"Unknown label scheme {name!r}; choose one of {', '.join(SCHEMES)}.") from None


# ------------------------------------------------------------------------------------------------ loading


def load_examples(engine: Engine, selection: Selection = Selection(),
                  fusion: FusionRule | None = None, ended_after: timedelta | None = None) -> list[RewardExample]:
    """Every selected rating with its conversation so far, its level fused with its reply's signals when
    ``fusion`` is given. With ``ended_after`` (for signal heads), the ratings carry the heads' targets and
    are followed by the replies that ended their conversation more than that long ago.

    One query returns each rating's messages up to the rated reply, ordered so that the rows of one rating
    arrive together; they are streamed and folded into examples without holding the result set.
    """
    statement = (
        select(
            FeedbackRow.id,
            FeedbackRow.tenant,
            FeedbackRow.conversation_id,
            FeedbackRow.user_id,
            FeedbackRow.query_turn,
            FeedbackRow.response_turn,
            FeedbackRow.level,
            FeedbackRow.probabilities,
            MessageRow.turn_index,
            MessageRow.role,
            MessageRow.content,
            MessageRow.created_at,
        )
        .join(
            MessageRow,
            and_(
                MessageRow.tenant == FeedbackRow.tenant,
                MessageRow.conversation_id == FeedbackRow.conversation_id,
                MessageRow.turn_index <= FeedbackRow.response_turn,
            ),
        )
        .order_by(FeedbackRow.id, MessageRow.turn_index)
    )
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=5_000).execute(_restrict(statement, selection))
        folded = [_example(list(group)) for _, group in groupby(rows, key=attrgetter("id"))]
    examples = [example for example in folded if example is not None]
    if len(examples) < len(folded):
        logger.warning(
            "%d ratings skipped: their query or response message is not in the messages table.",
            len(folded) - len(examples),
        )
    if fusion is None and ended_after is None:
        return examples
    signals = load_signals(engine, selection.tenants)
    if fusion is not None:
        examples = with_signals(examples, signals, fusion)
    if ended_after is not None:
        examples = with_head_targets(examples, signals) + load_ended_replies(engine, selection, ended_after)
    return examples


def with_signals(examples: list[RewardExample], signals: Mapping[MessageKey, Sequence[SignalEvent]],
                 rule: FusionRule) -> list[RewardExample]:
    """``examples`` with their levels fused with the signals on their replies.

    A level that signals changed loses the labeler's probabilities: they describe the follow-up alone, and
    soft targets from them would teach the old level.
    """
    fused = []
    for example in examples:
        key = (example.tenant, example.conversation_id, example.response_turn)
        result = fuse(example.level, signals.get(key, ()), rule)
        if result.decided_by == FOLLOWUP:
            fused.append(example)
            continue
        probabilities = example.probabilities if result.level == example.level else None
        fused.append(replace(example, level=result.level, probabilities=probabilities, fusion=result.reason))
    counts = Counter(example.fusion is not None for example in fused)
    logger.info("Fusion: signals counted on %d of %d examples.", counts[True], len(fused))
    return fused


def with_head_targets(examples: Sequence[RewardExample],
                      signals: Mapping[MessageKey, Sequence[SignalEvent]]) -> list[RewardExample]:
    """Follow-up-labeled ``examples`` with their signal heads' targets: every one was continued (its
    follow-up is what labeled it), and its thumbs target is the verdict of the signals on its reply."""
    return [replace(example, continued=True, thumbs_up=thumbs_up_target(
        signals.get((example.tenant, example.conversation_id, example.response_turn), ())))
        for example in examples]


def ended_reply(tenant: str, conversation_id: str, messages: Sequence[Message], user_id: str | None = None,
                created_at: datetime | None = None) -> RewardExample | None:
    """The last message of a conversation as a ``continue`` example with target 0, when it is an assistant
    reply the user never answered; None otherwise.

    It gets no level and no thumbs target: without a follow-up it never went through the worker's refinement
    filters, so it teaches only the head that exists to learn from it.
    """
    if not messages or messages[-1].role != Role.ASSISTANT:
        return None
    *before, response = messages
    asked = bool(before) and before[-1].role == Role.USER
    return RewardExample(
        tenant=tenant, conversation_id=conversation_id, user_id=user_id,
        history=tuple(before[:-1] if asked else before), query=before[-1].content if asked else "",
        response=response.content, level=None, created_at=created_at, response_turn=response.turn_index,
        continued=False,
    )


def load_ended_replies(engine: Engine, selection: Selection = Selection(),
                       idle: timedelta = timedelta(minutes=10)) -> list[RewardExample]:
    """The replies that ended their conversation: the conversation's last message, an assistant one, sent
    more than ``idle`` ago (a user who had that long to answer and did not). The selection's tenants and
    time range apply; its labelers, stages and levels do not, since these replies have no label."""
    later = aliased(MessageRow)
    last = (select(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index)
            .where(MessageRow.role == Role.ASSISTANT.value,
                   MessageRow.created_at < datetime.now(UTC) - idle,
                   ~exists().where(later.tenant == MessageRow.tenant,
                                   later.conversation_id == MessageRow.conversation_id,
                                   later.turn_index > MessageRow.turn_index)))
    if selection.tenants:
        last = last.where(MessageRow.tenant.in_(selection.tenants))
    if selection.since is not None:
        last = last.where(MessageRow.created_at >= selection.since)
    if selection.until is not None:
        last = last.where(MessageRow.created_at < selection.until)
    ended = last.subquery()
    statement = (select(MessageRow).join(ended, and_(MessageRow.tenant == ended.c.tenant,
                                                     MessageRow.conversation_id == ended.c.conversation_id))
                 .order_by(MessageRow.tenant, MessageRow.conversation_id, MessageRow.turn_index))
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    examples = []
    for (tenant, conversation_id), group in groupby(rows, key=attrgetter("tenant", "conversation_id")):
        turns = list(group)
        users = [row.user_id for row in turns if row.user_id is not None]
        example = ended_reply(tenant, conversation_id, [Message(Role(row.role), row.content, row.turn_index)
                                                        for row in turns],
                              users[-1] if users else None, turns[-1].created_at)
        if example is not None:
            examples.append(example)
    return examples


def labeler_versions(engine: Engine, selection: Selection = Selection()) -> dict[str, int]:
    """How many selected labels each labeler version gave (``"rules 1"`` -> count), for a model's card."""
    statement = _restrict(select(FeedbackRow.labeler_id, FeedbackRow.labeler_version, func.count())
                          .group_by(FeedbackRow.labeler_id, FeedbackRow.labeler_version), selection)
    with engine.connect() as connection:
        return {f"{labeler} {version}": count for labeler, version, count in connection.execute(statement)}


def _restrict(statement: Select, selection: Selection) -> Select:
    columns = (
        (FeedbackRow.tenant, selection.tenants),
        (FeedbackRow.labeler_id, selection.labelers),
        (FeedbackRow.stage, selection.stages),
        (FeedbackRow.level, selection.levels),
    )
    for column, allowed in columns:
        if allowed:
            statement = statement.where(column.in_(allowed))
    if selection.since is None and selection.until is None:
        return statement
    response = aliased(MessageRow)
    statement = statement.join(
        response,
        and_(
            response.tenant == FeedbackRow.tenant,
            response.conversation_id == FeedbackRow.conversation_id,
            response.turn_index == FeedbackRow.response_turn,
        ),
    )
    if selection.since is not None:
        statement = statement.where(response.created_at >= selection.since)
    if selection.until is not None:
        statement = statement.where(response.created_at < selection.until)
    return statement


def _example(rows: list[Row]) -> RewardExample | None:
    """One rating's rows (its conversation up to the reply, oldest first) -> an example, or None when
    its query or response message is missing."""
    rating = rows[0]
    by_turn = {row.turn_index: row for row in rows}
    response = by_turn.get(rating.response_turn)
    query = by_turn.get(rating.query_turn) if rating.query_turn is not None else None
    if response is None or (rating.query_turn is not None and query is None):
        return None
    history_end = rating.response_turn if query is None else rating.query_turn
    return RewardExample(
        tenant=rating.tenant,
        conversation_id=rating.conversation_id,
        user_id=rating.user_id,
        history=tuple(
            Message(Role(row.role), row.content, row.turn_index)
            for row in rows
            if row.turn_index < history_end
        ),
        query=query.content if query is not None else "",
        response=response.content,
        level=rating.level,
        created_at=response.created_at,
        probabilities=tuple(rating.probabilities) if rating.probabilities else None,
        response_turn=rating.response_turn,
    )


# -------------------------------------------------------------------------------------------------- split


def split_by_user(
    examples: Sequence[RewardExample], holdout_fraction: float, seed: int
) -> tuple[list[RewardExample], list[RewardExample]]:
    """(train, holdout) with no user on both sides; anonymous examples are grouped by conversation.

    Users are ranked by a seeded hash rather than shuffled, so as the data grows a user rarely changes
    side, and successive model versions are compared on people none of them trained on.
    """
    groups: dict[str, list[RewardExample]] = {}
    for example in examples:
        groups.setdefault(user_key(example), []).append(example)
    ranked = sorted(groups, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    target = holdout_fraction * len(examples)
    holdout: list[RewardExample] = []
    for key in ranked[:-1]:  # the last group always trains
        if len(holdout) >= target:
            break
        holdout.extend(groups.pop(key))
    train = [example for group in groups.values() for example in group]
    return train, holdout


def split_by_time(
    examples: Sequence[RewardExample], holdout_fraction: float, seed: int
) -> tuple[list[RewardExample], list[RewardExample]]:
    """(train, holdout) with the most recent replies held out: the model is measured on traffic newer than
    anything it trained on, as it will be in service. ``seed`` is unused; the split is fully ordered."""
    ordered = sorted(examples, key=lambda example: (example.created_at is not None, example.created_at))
    cut = len(ordered) - int(holdout_fraction * len(ordered))
    return ordered[:cut], ordered[cut:]


Split = Literal["user", "time"]
SPLITS: dict[str, Callable[..., tuple[list[RewardExample], list[RewardExample]]]] = {
    "user": split_by_user,
    "time": split_by_time,
}


def user_key(example: RewardExample) -> str:
    """Who an example belongs to: its user, or its conversation when the user is unknown."""
    if example.user_id is not None:
        return f"{example.tenant}\0user\0{example.user_id}"
    return f"{example.tenant}\0conversation\0{example.conversation_id}"


# ---------------------------------------------------------------------------------------------- reporting


def balance_report(examples: Iterable[RewardExample], scheme: LabelScheme) -> str:
    """One line for people: how many examples per level the scheme keeps, and how many it drops."""
    counts = Counter(example.level for example in examples if example.level is not None)
    kept = sum(counts[level] for level in scheme.levels)
    parts = [
        f"{SatisfactionLevel(level).name.lower().replace('_', ' ')} {counts[level]} "
        f"({counts[level] / max(kept, 1):.0%})"
        for level in scheme.levels
    ]
    dropped = sum(counts.values()) - kept
    report = f"{kept} examples: " + ", ".join(parts)
    return report + (f"; {dropped} dropped by {scheme.name}" if dropped else "")
