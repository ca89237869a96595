"""The conversation window: pairing rules, duplicates, out-of-order and stale messages."""

import itertools

from tacit.core.conversations import ConversationWindow, Outcome, candidates_from_stored, observe
from tacit.core.domain import ChatEvent, Message, Role

ROLES = [Role.USER, Role.ASSISTANT] * 4


def event(turn: int, role: Role | None = None, content: str | None = None) -> ChatEvent:
    return ChatEvent(tenant="t", conversation_id="c", turn_index=turn, role=role or ROLES[turn],
                     content=content or f"message {turn}", user_id="u")


def run(turns, capacity=8):
    window, found = ConversationWindow(), []
    for turn in turns:
        observation = observe(window, event(turn), capacity)
        window = observation.window
        found += [(c.response.turn_index, c.followup.turn_index) for c in observation.candidates]
    return window, found


def test_a_user_message_after_an_assistant_message_is_a_candidate():
    window, found = run(range(5))
    assert found == [(1, 2), (3, 4)]
    assert [m.turn_index for m in window.messages] == [0, 1, 2, 3, 4]


def test_candidate_carries_query_history_and_user():
    window, _ = run(range(3))
    observation = observe(window, event(3), capacity=8)
    (candidate,) = observe(observation.window, event(4), capacity=8).candidates
    assert candidate.query.turn_index == 2
    assert [m.turn_index for m in candidate.history] == [0, 1]
    assert candidate.user_id == "u"


def test_every_arrival_order_yields_the_same_pairs_once():
    for order in itertools.permutations(range(5)):
        _, found = run(order)
        assert sorted(found) == [(1, 2), (3, 4)], order


def test_duplicates_keep_the_window_and_emit_their_pairs_again():
    """A redelivery after a crash must still produce the label its first delivery may have lost."""
    window, _ = run(range(3))
    observation = observe(window, event(2, content="a different text"), capacity=8)
    assert observation.outcome is Outcome.DUPLICATE
    assert observation.window == window
    (candidate,) = observation.candidates
    assert (candidate.response.turn_index, candidate.followup.content) == (1, "message 2")
    assert observe(window, event(0), capacity=8).candidates == ()


def test_window_is_bounded_and_stale_messages_are_not_paired():
    window, found = run(range(8), capacity=3)
    assert [m.turn_index for m in window.messages] == [5, 6, 7]
    assert found == [(1, 2), (3, 4), (5, 6)]
    stale = observe(window, event(0), capacity=3)
    assert stale.outcome is Outcome.STALE and stale.candidates == ()


def test_a_redelivered_oldest_turn_of_a_full_window_is_paired_from_the_stored_conversation():
    """After a crash the restored window can start at a follow-up whose reply came back, stale, in an earlier
    batch: the window cannot pair the two, the stored conversation can."""
    window, _ = run(range(2, 7), capacity=3)
    assert [m.turn_index for m in window.messages] == [4, 5, 6]
    redelivered = observe(window, event(4), capacity=3)
    assert redelivered.outcome is Outcome.STALE and redelivered.window == window
    assert observe(window, event(5), capacity=3).outcome is Outcome.DUPLICATE
    (candidate,) = candidates_from_stored(stored(range(5)), "u", event(4), capacity=3)
    assert (candidate.response.turn_index, candidate.followup.turn_index) == (3, 4)


def stored(turns) -> list[Message]:
    return [Message(ROLES[t], f"message {t}", t) for t in turns]


def test_a_stale_turn_is_paired_as_in_order_from_the_stored_conversation():
    """The window it would have met: the same candidate as in-order processing, history bounded alike."""
    in_order = {(c.response.turn_index, c.followup.turn_index): c
                for t in range(8) for c in observe(run(range(t), capacity=3)[0], event(t), 3).candidates}
    for turn in range(8):
        for candidate in candidates_from_stored(stored(range(8)), "u", event(turn), capacity=3):
            assert candidate == in_order[(candidate.response.turn_index, candidate.followup.turn_index)]
    pairs = {(c.response.turn_index, c.followup.turn_index)
             for t in range(8) for c in candidates_from_stored(stored(range(8)), "u", event(t), capacity=3)}
    assert pairs == {(1, 2), (3, 4), (5, 6)}


def test_a_stale_turn_keeps_the_stored_text_and_waits_for_a_missing_partner():
    (candidate,) = candidates_from_stored(stored([1]), None, event(2, content="redelivered"), capacity=3)
    assert candidate.followup.content == "redelivered" and candidate.user_id == "u"
    (candidate,) = candidates_from_stored(stored([1, 2]), None, event(2, content="redelivered"), capacity=3)
    assert candidate.followup.content == "message 2"
    assert candidates_from_stored(stored([3]), None, event(2), capacity=3) == ()


def test_assistant_then_assistant_is_not_a_candidate():
    window = observe(ConversationWindow(), event(0, Role.ASSISTANT), 8).window
    assert observe(window, event(1, Role.ASSISTANT), 8).candidates == ()


def test_reply_that_opens_the_conversation_has_no_query():
    window = observe(ConversationWindow(), event(0, Role.ASSISTANT), 8).window
    (candidate,) = observe(window, event(1, Role.USER), 8).candidates
    assert candidate.query is None and candidate.history == ()


def test_window_round_trips_through_json():
    window, _ = run(range(4))
    assert ConversationWindow.from_json(window.to_json()) == window
    assert ConversationWindow.from_json(None) == ConversationWindow()
