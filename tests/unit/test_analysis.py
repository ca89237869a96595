"""The pure logic of the user-diversity analysis: examples per user, and drawing equal-size subsets."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tacit.core.examples import RewardExample, split_by_user
from tacit.trainer.diversity import (
    TooFewForAnalysis,
    UserDistribution,
    default_user_counts,
    draw_subset,
    fewest_users,
)


def example(user: str, index: int) -> RewardExample:
    return RewardExample("t", f"{user}-{index}", user, (), "q", "r", level=1 + index % 2 * 3)


def groups_of(sizes: list[int]) -> dict[str, list[tuple[str, int]]]:
    return {f"u{user}": [(f"u{user}", i) for i in range(size)] for user, size in enumerate(sizes)}


def test_the_distribution_counts_examples_per_user_most_first():
    examples = [example("ada", i) for i in range(6)] + [example("bo", i) for i in range(3)] + [example("cy", 0)]
    distribution = UserDistribution.of(examples)
    assert distribution.counts == (6, 3, 1)
    assert (distribution.users, distribution.examples) == (3, 10)
    assert distribution.top_share(0.01) == pytest.approx(0.6)  # the top user, at least one
    assert distribution.histogram() == [("1", 1), ("2-3", 1), ("4-7", 1)]


def test_anonymous_examples_count_as_one_user_per_conversation():
    examples = [RewardExample("t", conversation, None, (), "q", "r", 1) for conversation in ("a", "a", "b")]
    assert UserDistribution.of(examples).counts == (2, 1)


@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    users=st.integers(1, 30),
    size=st.integers(1, 60),
    seed=st.integers(0, 5),
)
def test_a_subset_has_the_size_and_exactly_the_users_asked_for(sizes, users, size, seed):
    groups = groups_of(sizes)
    feasible = users <= min(len(sizes), size) and sum(sorted(sizes, reverse=True)[:users]) >= size
    if not feasible:
        with pytest.raises(TooFewForAnalysis):
            draw_subset(groups, users, size, seed)
        return
    subset = draw_subset(groups, users, size, seed)
    assert len(subset) == size and len(set(subset)) == size  # no item twice
    per_user = Counter(user for user, _ in subset)
    assert len(per_user) == users
    assert all(count <= len(groups[user]) for user, count in per_user.items())


def test_shares_are_as_even_as_the_users_sizes_allow():
    subset = draw_subset(groups_of([1, 10, 10, 10]), users=4, size=16, seed=0)
    assert sorted(Counter(user for user, _ in subset).values()) == [1, 5, 5, 5]


def test_a_subset_is_the_same_for_a_seed_and_differs_between_seeds():
    groups = groups_of([5] * 40)
    assert draw_subset(groups, 8, 32, seed=1) == draw_subset(groups, 8, 32, seed=1)
    assert draw_subset(groups, 8, 32, seed=1) != draw_subset(groups, 8, 32, seed=2)


def test_subsets_never_hold_an_evaluation_user():
    examples = [example(f"user{u}", i) for u in range(30) for i in range(u % 5 + 1)]
    pool, evaluation = split_by_user(examples, 0.2, seed=0)
    groups: dict[str, list[RewardExample]] = {}
    for item in pool:
        groups.setdefault(item.user_id, []).append(item)
    held_out = {item.user_id for item in evaluation}
    assert held_out
    for users in (3, 6, 12):
        assert not {item.user_id for item in draw_subset(groups, users, 12, seed=0)} & held_out


def test_one_user_with_many_examples_fills_a_subset_alone():
    subset = draw_subset(groups_of([2, 40, 3]), users=1, size=32, seed=0)
    assert {user for user, _ in subset} == {"u1"}


def test_the_errors_say_what_to_lower():
    with pytest.raises(TooFewForAnalysis, match="lower --subset-size to 5, or leave out user counts below 2"):
        draw_subset(groups_of([5, 4, 3]), users=1, size=8, seed=0)
    with pytest.raises(TooFewForAnalysis, match="lower --subset-size to at most 12"):
        draw_subset(groups_of([5, 4, 3]), users=3, size=20, seed=0)
    with pytest.raises(TooFewForAnalysis, match="user counts .* to at most 3"):
        draw_subset(groups_of([5, 4, 3]), users=4, size=6, seed=0)
    with pytest.raises(TooFewForAnalysis, match="lower the user counts to at most --subset-size"):
        draw_subset(groups_of([5, 4, 3]), users=3, size=2, seed=0)


def test_default_user_counts_go_from_the_fewest_users_to_one_example_each():
    assert fewest_users([40, 10, 10], 45) == 2
    assert default_user_counts([40, 10, 10], 45) == (2, 3)
    assert default_user_counts([64] + [2] * 200, 64) == (1, 4, 16, 64)
