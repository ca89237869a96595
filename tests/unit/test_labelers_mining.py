"""Implicit-feedback mining on real follow-ups (HH-RLHF helpful-base), rated by the rules labeler."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tacit.core.domain import (
    FILTERED,
    PENDING,
    REFINED,
    FeedbackCandidate,
    Followup,
    Label,
    Message,
    Role,
    SatisfactionLevel,
    Stored,
)
from tacit.core.settings import TacitSettings
from tacit.labels.embedding import load_encoder
from tacit.labels.rules import RulesLabeler
from tacit.refine.mining import Miner, decide
from tacit.refine.pipeline import with_refinements
from tests.helpers.mining import (
    FRIDGE_ASK,
    FRIDGE_THANKS,
    KETO_ASK,
    KETO_THANKS,
    NATIVITY_ASK,
    NATIVITY_GREAT,
    PODCASTS,
    REPLY,
    WATER,
)


@pytest.fixture(scope="module")
def miner() -> Miner:
    settings = TacitSettings()
    return Miner(lambda: load_encoder(settings), threshold=0.55, idle_seconds=600)


def conversation(*followups: str, opening: str = "What is a ketogenic diet and how does it work?"):
    """Candidates of one conversation (opening, reply, follow-up, reply, ...) with their raw and derived rows."""
    messages = [Message(Role.USER, opening, 0)]
    for text in followups:
        messages += [Message(Role.ASSISTANT, REPLY, len(messages)), Message(Role.USER, text, len(messages) + 1)]
    candidates = [FeedbackCandidate(tenant="t", conversation_id="c", user_id="u", history=tuple(messages[:turn - 2]),
                                    query=messages[turn - 2], response=messages[turn - 1], followup=messages[turn])
                  for turn in range(2, len(messages), 2)]
    return with_refinements(candidates, RulesLabeler().label(candidates))


def derived(rows) -> dict[int, Label]:
    """Follow-up turn -> derived label."""
    return {candidate.followup.turn_index: label for candidate, label in rows[len(rows) // 2:]}


def test_a_neutral_item_takes_the_level_of_a_similar_positive_followup(miner: Miner) -> None:
    rows, _ = miner.mine_batch(conversation(KETO_ASK, KETO_THANKS))
    label = derived(rows)[2]
    assert (label.stage, label.level) == (REFINED, SatisfactionLevel.SATISFACTION)
    assert label.reason.startswith("mined: follow-up at turn 4 is level 5, cosine 0.60; neutral")
    assert rows[0][1].level == SatisfactionLevel.NEUTRAL  # the raw row keeps the labeler's own rating


def test_an_unrelated_thanks_decides_nothing(miner: Miner) -> None:
    waiting, _ = miner.mine_batch(conversation(FRIDGE_ASK, FRIDGE_THANKS))
    assert derived(waiting)[2].stage == PENDING  # one later follow-up: the next one may still be similar

    rows, _ = miner.mine_batch(conversation(FRIDGE_ASK, FRIDGE_THANKS, WATER))
    assert derived(rows)[2] == replace(derived(conversation(FRIDGE_ASK))[2], stage=REFINED)  # unchanged


def test_only_the_next_two_followups_count(miner: Miner) -> None:
    rows, _ = miner.mine_batch(conversation(KETO_ASK, WATER, PODCASTS, KETO_THANKS))
    labels = derived(rows)
    assert (labels[2].stage, labels[2].level) == (REFINED, SatisfactionLevel.NEUTRAL)  # turn 8 is the third
    assert labels[2].reason == "neutral: no explicit feedback"
    assert labels[4].stage == REFINED and labels[6].stage == PENDING


@pytest.mark.parametrize(("threshold", "level"), [(0.55, SatisfactionLevel.POSITIVE_ENGAGEMENT),
                                                  (0.75, SatisfactionLevel.NEUTRAL)])
def test_the_threshold(miner: Miner, threshold: float, level: SatisfactionLevel) -> None:
    strict = Miner(lambda: miner.encoder, threshold=threshold, idle_seconds=600)
    rows, _ = strict.mine_batch(conversation(NATIVITY_ASK, NATIVITY_GREAT, WATER))
    assert (derived(rows)[2].stage, derived(rows)[2].level) == (REFINED, level)


def test_non_neutral_and_filtered_items_never_wait(miner: Miner) -> None:
    correction = "That's wrong, I asked for a keto breakfast, not a vegan one."
    rows, _ = miner.mine_batch(conversation(correction, KETO_THANKS))
    assert (derived(rows)[2].stage, derived(rows)[2].level) == (REFINED, SatisfactionLevel.ERROR_CORRECTION)

    rows, _ = miner.mine_batch(conversation(KETO_ASK, KETO_THANKS, opening="keto?"))  # query under 5 words
    assert derived(rows)[2] == derived(conversation(KETO_ASK, opening="keto?"))[2]
    assert derived(rows)[2].stage == FILTERED


def test_no_embedding_without_a_positive_followup() -> None:
    def no_encoder():
        raise AssertionError("embedded without a (neutral, positive) pair")

    rows, _ = Miner(no_encoder, threshold=0.55, idle_seconds=600).mine_batch(conversation(KETO_ASK, WATER, PODCASTS))
    assert [label.stage for label in derived(rows).values()] == [REFINED, PENDING, PENDING]


def test_a_stored_pending_item_is_decided_by_a_later_batch(miner: Miner) -> None:
    first, _ = miner.mine_batch(conversation(KETO_ASK))
    candidate, label = first[1]
    assert label.stage == PENDING
    stored = Stored(candidate.response.turn_index, Followup.of(candidate, first[0][1]), label)

    later = conversation(KETO_ASK, KETO_THANKS)[1::2]  # the batch holds turn 4 only: raw row, derived row
    rows, decided = miner.mine_batch(later, [stored])
    assert rows == later
    assert decided == [derived(miner.mine_batch(conversation(KETO_ASK, KETO_THANKS))[0])[2]]


def test_decide_looks_at_two_followups_at_most() -> None:
    label = Label(SatisfactionLevel.NEUTRAL, 0.5, "neutral", "rules", "1", PENDING)
    item = Followup(("t", "c"), "rules", 2, "a", SatisfactionLevel.NEUTRAL, 0.5)
    neutral, positive = (Followup(("t", "c"), "rules", turn, "b", level, 0.9) for turn, level in
                         ((4, SatisfactionLevel.NEUTRAL), (6, SatisfactionLevel.SATISFACTION)))
    assert decide(label, item, [neutral], lambda a, b: 0.9, 0.55).stage == PENDING
    assert decide(label, item, [neutral, positive], lambda a, b: 0.9, 0.55).level == SatisfactionLevel.SATISFACTION
    assert decide(label, item, [neutral, positive], lambda a, b: 0.54, 0.55) == replace(label, stage=REFINED)
