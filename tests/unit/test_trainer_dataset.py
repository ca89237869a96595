"""Label schemes, the per-user split and the class-balance line."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tacit.core.domain import Message, Role
from tacit.core.examples import RewardExample, balance_report, label_scheme, split_by_time, split_by_user


def example(level: int, user: str | None = "u1", conversation: str = "c1") -> RewardExample:
    return RewardExample(
        tenant="acme",
        conversation_id=conversation,
        user_id=user,
        history=(Message(Role.USER, "hi", 0), Message(Role.ASSISTANT, "Hello!", 1)),
        query="Write a haiku about rain.",
        response="Soft rain on the roof",
        level=level,
    )


def test_wildfb_drops_neutral_and_maps_the_rest_in_order() -> None:
    scheme = label_scheme("wildfb")

    assert [scheme.keeps(example(level)) for level in range(1, 6)] == [True, True, False, True, True]
    assert [scheme.to_class(level) for level in (1, 2, 4, 5)] == [0, 1, 2, 3]
    assert scheme.num_classes == 4


def test_five_keeps_every_level() -> None:
    scheme = label_scheme("five")

    assert [scheme.to_class(level) for level in range(1, 6)] == [0, 1, 2, 3, 4]


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="wildfb, five"):
        label_scheme("binary")


def many_users() -> list[RewardExample]:
    return [
        example(level=1 + i % 5, user=f"user-{i % 17}", conversation=f"conv-{i}") for i in range(200)
    ] + [example(level=4, user=None, conversation=f"anon-{i % 9}") for i in range(40)]


def side(examples: list[RewardExample]) -> set[tuple[str | None, str | None]]:
    return {(e.user_id, None if e.user_id else e.conversation_id) for e in examples}


def test_split_keeps_every_user_and_anonymous_conversation_on_one_side() -> None:
    train, holdout = split_by_user(many_users(), holdout_fraction=0.2, seed=0)

    assert not side(train) & side(holdout)
    assert len(train) + len(holdout) == 240
    assert 0.2 * 240 <= len(holdout) < 0.2 * 240 + 20  # whole groups, stopping once the target is reached


def test_split_is_deterministic_per_seed_and_independent_of_order() -> None:
    examples = many_users()
    _, holdout = split_by_user(examples, 0.2, seed=0)
    _, reversed_holdout = split_by_user(examples[::-1], 0.2, seed=0)
    _, other_seed = split_by_user(examples, 0.2, seed=1)

    assert side(holdout) == side(reversed_holdout)
    assert side(holdout) != side(other_seed)


def test_split_never_holds_out_the_only_user() -> None:
    train, holdout = split_by_user([example(1), example(5)], holdout_fraction=0.5, seed=0)

    assert (len(train), len(holdout)) == (2, 0)


def test_balance_report_counts_kept_levels_and_dropped_ones() -> None:
    examples = [example(1), example(2), example(2), example(3), example(5)]

    assert balance_report(examples, label_scheme("wildfb")) == (
        "4 examples: rejection 1 (25%), error correction 2 (50%), positive engagement 0 (0%), "
        "satisfaction 1 (25%); 1 dropped by wildfb"
    )


def test_time_split_holds_out_the_newest_replies() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    examples = [replace(example(1 + i % 5, user=f"u{i}"), created_at=start + timedelta(hours=i)) for i in range(20)]

    train, holdout = split_by_time(examples[::-1], holdout_fraction=0.25, seed=0)

    assert [e.created_at for e in holdout] == [start + timedelta(hours=i) for i in range(15, 20)]
    assert max(e.created_at for e in train) < min(e.created_at for e in holdout)
