"""Pairs ranked by a reward model: grouping replies by prompt, best against worst, the tie margin.

The scorer is a fake that rewards a reply by its length, so the expected pair is known; the store is an
in-memory SQLite database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tacit.core.db import Base, MessageRow
from tacit.core.domain import Role
from tacit.model.schema import ChatItem, ScoreResponse, Turn
from tacit.rlhi.ranking import Candidate, PromptGroup, best_and_worst, prompt_key, rank, stored_groups


class LengthScorer:
    """Reward = length of the reply; remembers each request's size."""

    def __init__(self) -> None:
        self.requests: list[int] = []

    def score(self, items: Sequence[ChatItem]) -> ScoreResponse:
        self.requests.append(len(items))
        rewards = [float(len(item.response)) for item in items]
        return ScoreResponse(rewards=rewards, level_probabilities=[[1.0]] * len(items), levels=[5],
                             model_version=3)


def user(text: str) -> Turn:
    return Turn(role=Role.USER, content=text)


def group(*replies: str, prompt: str = "hi") -> PromptGroup:
    made = PromptGroup("t", (user(prompt),), None)
    for index, reply in enumerate(replies):
        made.add(Candidate(reply, {"sample": index}))
    return made


def test_the_longest_reply_is_chosen_and_the_shortest_rejected():
    [pair] = rank(LengthScorer(), [group("medium", "a long reply", "s")], margin=0.5)
    assert (pair.chosen.text, pair.rejected.text) == ("a long reply", "s")
    assert (pair.chosen_reward, pair.rejected_reward, pair.model_version) == (12.0, 1.0, 3)
    assert pair.chosen.origin == {"sample": 1}


@pytest.mark.parametrize(("rewards", "margin", "expected"), [
    ([1.0, 3.0, 2.0], 2.0, (1, 0)),  # exactly the margin counts
    ([1.0, 3.0, 2.0], 2.01, None),  # a near-tie
    ([2.0, 2.0], 0.0, None),  # a tie is never a pair
])
def test_best_and_worst_respects_the_margin(rewards, margin, expected):
    assert best_and_worst(group("a", "b", "c"), rewards, margin) == expected


def test_single_replies_and_identical_replies_are_not_scored():
    scorer = LengthScorer()
    assert list(rank(scorer, [group("only one"), group("Same  reply", "same reply")], margin=0.0)) == []
    assert scorer.requests == []


def test_groups_are_packed_into_requests_but_never_split(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("tacit.rlhi.ranking.MAX_ITEMS", 5)
    scorer = LengthScorer()
    pairs = list(rank(scorer, [group("a", "bb", prompt=str(i)) for i in range(3)] + [group("a", "bb", "ccc")], 0.5))
    assert scorer.requests == [4, 5]
    assert [pair.chosen.text for pair in pairs] == ["bb", "bb", "bb", "ccc"]


def test_the_prompt_key_ignores_case_and_spacing_but_not_roles():
    assert prompt_key([user("Hello  World ")]) == prompt_key([user("hello world")])
    assert prompt_key([user("hi")]) != prompt_key([Turn(role=Role.SYSTEM, content="hi")])
    assert prompt_key([user("a"), user("b")]) != prompt_key([user("a b")])


def test_stored_replies_to_the_same_prompt_are_grouped_across_conversations():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    conversations = {
        "c1": ("ada", ["What is DPO?", "An RL method.", "Thanks", "You're welcome."]),
        "c2": ("bo", ["what is  DPO?", "Direct preference optimisation.", "Thanks", "Glad to help."]),
        "c3": ("bo", ["Something else", "Sure."]),
    }
    messages = [(conversation, user_id, turn, text) for conversation, (user_id, texts) in conversations.items()
                for turn, text in enumerate(texts)]
    with Session(engine) as session, session.begin():
        session.add_all(  # explicit ids: SQLite does not number BIGINT keys
            MessageRow(id=number, event_id=str(number), tenant="t", conversation_id=conversation, turn_index=turn,
                       role=(Role.USER if turn % 2 == 0 else Role.ASSISTANT).value, content=text,
                       user_id=user_id, metadata_={}, created_at=datetime.now(UTC))
            for number, (conversation, user_id, turn, text) in enumerate(messages)
        )
    groups = {len(group.candidates): group for group in stored_groups(engine, "t")}
    first = groups[2]
    assert [candidate.origin for candidate in first.candidates] == [{"conversation_id": "c1", "turn": 1},
                                                                    {"conversation_id": "c2", "turn": 1}]
    assert first.prompt == (user("What is DPO?"),) and first.user_id is None  # two users asked it
    # the "Thanks" turns follow different replies, so they are different prompts: singletons
    assert sorted(len(group.candidates) for group in stored_groups(engine, "t")) == [1, 1, 1, 2]
    assert stored_groups(engine, "other") == []
