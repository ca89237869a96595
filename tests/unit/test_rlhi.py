"""Re-attempt pairs and extractive personas: the pure logic, without a database."""

from __future__ import annotations

import pytest

from tacit.core import llm as chat
from tacit.core.domain import SIGNAL, Message, Role
from tacit.core.errors import TacitError
from tacit.core.llm import JudgeConfig
from tacit.devstack.stack import free_port
from tacit.rlhi import persona_summary
from tacit.rlhi.pairs import REGENERATION, Rating, reattempt_pairs, regeneration_pairs
from tacit.rlhi.persona_summary import PersonaSummariser, parse, render
from tacit.rlhi.personas import UserHistory, extract_personas
from tests.helpers.llm import Server, completion, connect

CONVERSATION = [
    Message(Role.USER, "Write a function that reverses a string.", 0),
    Message(Role.ASSISTANT, "function reverse(s) { return s.split('').reverse().join(''); }", 1),
    Message(Role.USER, "No, I asked for Python.", 2),
    Message(Role.ASSISTANT, "def reverse(s):\n    return s[::-1]", 3),
    Message(Role.USER, "Thanks, that works!", 4),
]


def rating(turn: int, level: int) -> Rating:
    return Rating(turn, turn + 1, level, 0.9, "rules", "1", "raw")


def pairs(ratings: dict[int, Rating], messages: list[Message] = CONVERSATION):
    return reattempt_pairs("acme", "c1", "u1", messages, ratings)


@pytest.mark.parametrize("rejected_level", [1, 2])
@pytest.mark.parametrize("accepted_level", [4, 5])
def test_a_corrected_reply_and_its_accepted_retry_make_a_pair(rejected_level: int, accepted_level: int):
    [pair] = pairs({1: rating(1, rejected_level), 3: rating(3, accepted_level)})
    assert [message.turn_index for message in pair.prompt] == [0, 2]  # the query, then the feedback
    assert pair.prompt[-1].content == "No, I asked for Python."
    assert pair.chosen.turn_index == 3 and pair.rejected.turn_index == 1
    assert (pair.provenance["rejected"]["level"], pair.provenance["chosen"]["level"]) == (rejected_level, accepted_level)


REGENERATED = [
    Message(Role.USER, "Write a function that reverses a string.", 0),
    Message(Role.ASSISTANT, "function reverse(s) { return s.split('').reverse().join(''); }", 1),
    Message(Role.ASSISTANT, "def reverse(s): return s[::-1]", 2),
    Message(Role.ASSISTANT, "def reverse(s):\n    return s[::-1]", 3),
    Message(Role.USER, "Thanks!", 4),
]


def on(turn: int, kind: str, **fields):
    return SIGNAL.validate_python({"tenant": "acme", "conversation_id": "c1", "message_turn": turn, "signal": kind,
                                   "event_id": f"{kind}-{turn}", **fields})


def regenerated(signals: dict[int, list], messages: list[Message] = REGENERATED):
    return [(pair.rejected.turn_index, pair.chosen.turn_index, [m.turn_index for m in pair.prompt])
            for pair in regeneration_pairs("acme", "c1", "u1", messages, signals)]


def test_a_regenerated_reply_is_rejected_for_the_reply_that_replaced_it():
    [pair] = regeneration_pairs("acme", "c1", "u1", REGENERATED[:3] + REGENERATED[4:], {1: [on(1, "regenerate")]})
    assert (pair.rejected.turn_index, pair.chosen.turn_index, pair.source) == (1, 2, REGENERATION)
    assert [m.turn_index for m in pair.prompt] == [0]
    assert pair.provenance == {"regenerate": {"event_id": "regenerate-1", "at": pair.provenance["regenerate"]["at"]},
                               "replaced_by": [2], "chosen_signals": []}


def test_a_chain_of_regenerations_ends_at_the_reply_that_stayed():
    signals = {1: [on(1, "regenerate")], 2: [on(2, "regenerate")], 3: [on(3, "copy")]}
    assert regenerated(signals) == [(1, 3, [0]), (2, 3, [0])]


def test_the_signal_may_name_its_replacement():
    assert regenerated({1: [on(1, "regenerate", replacement_turn=3)]}) == [(1, 3, [0])]


@pytest.mark.parametrize("signals", [
    {1: [on(1, "regenerate")], 2: [on(2, "thumbs", up=False)]},  # the replacement was rejected as well
    {2: [on(2, "regenerate")]},  # nothing replaced the last reply
    {0: [on(0, "regenerate")]},  # a user message is not a reply
    {1: [on(1, "thumbs", up=False)]},  # no regeneration at all
])
def test_no_regeneration_pair_without_an_accepted_replacement(signals):
    assert regenerated(signals, REGENERATED[:3]) == []


@pytest.mark.parametrize("levels", [{1: 3, 3: 5}, {1: 1, 3: 3}, {1: 2, 3: 2}, {1: 4, 3: 5}, {1: 1}, {3: 5}])
def test_no_pair_without_a_correction_followed_by_an_accepted_retry(levels: dict[int, int]):
    assert pairs({turn: rating(turn, level) for turn, level in levels.items()}) == []


def test_no_pair_when_something_else_was_said_before_the_retry():
    messages = [*CONVERSATION[:3], Message(Role.USER, "Also make it fast.", 3),
                Message(Role.ASSISTANT, "def reverse(s):\n    return s[::-1]", 4)]
    assert pairs({1: rating(1, 2), 4: rating(4, 5)}, messages) == []


def test_the_history_before_the_query_is_in_the_prompt():
    opening = [Message(Role.USER, "Hi", 0), Message(Role.ASSISTANT, "Hello!", 1)]
    shifted = [Message(m.role, m.content, m.turn_index + 2) for m in CONVERSATION]
    [pair] = pairs({3: rating(3, 1), 5: rating(5, 4)}, opening + shifted)
    assert [message.content for message in pair.prompt] == ["Hi", "Hello!", CONVERSATION[0].content,
                                                            "No, I asked for Python."]


def history(user: str, messages: list[str], **fields) -> UserHistory:
    return UserHistory("acme", user, messages, **fields)


def test_personas_pick_the_words_languages_formats_and_corrections_that_set_a_user_apart():
    coder = history(
        "coder",
        ["How do I parse JSON in Python?", "Python pandas dataframe merge?", "No, use Python please",
         "No, use Python not Java please"],
        languages=["en", "en", "en", "de"],
        accepted_replies=["```python\nimport json\n```", "```python\ndf.merge(other)\n```"],
        corrections=["No, use Python please", "No, use Python not Java please"],
    )
    cook = history("cook", ["A recipe for bread?", "How long do I bake sourdough bread?"], languages=["fr"],
                   accepted_replies=["- flour\n- water\n- salt", "Bake it 40 minutes."])
    by_user = {persona.user_id: persona for persona in extract_personas([coder, cook])}
    assert by_user["coder"].topics[0] == "python"
    assert "bread" in by_user["cook"].topics and "python" not in by_user["cook"].topics
    assert by_user["coder"].languages == ("en", "de") and by_user["cook"].languages == ("fr",)
    assert by_user["coder"].formats == ("code", "short answers")
    assert by_user["cook"].formats == ("lists", "short answers")
    assert by_user["coder"].corrections == ("python", "use")
    assert by_user["cook"].corrections == ()
    assert by_user["coder"].summary.splitlines()[-1] == "Often corrects: python, use"
    assert by_user["coder"].num_messages == 4


def test_a_user_with_nothing_to_extract_gets_an_empty_persona():
    [persona] = extract_personas([history("quiet", ["ok", "42"])])
    assert persona.summary == "" and persona.topics == ()


# --------------------------------------------------------------------------------- the LLM summariser


def summariser(server: Server) -> PersonaSummariser:
    return connect(PersonaSummariser, server)


def test_the_prompt_is_bounded_whatever_the_history():
    chatty = history("chatty", [f"message {i} " + "x" * 5000 for i in range(500)])
    [persona] = extract_personas([chatty])
    prompt = render(persona, chatty)
    assert "message 499" in prompt and "message 491" not in prompt  # the latest messages only
    budget = persona_summary.RECENT_MESSAGES * (persona_summary.MESSAGE_CHARS + 3) + len(persona.summary) + 100
    assert len(prompt) <= budget


@pytest.mark.parametrize(("answer", "summary"), [
    ("  Writes Python and wants code.\n\nOften corrects the language.  ",
     "Writes Python and wants code.\nOften corrects the language."),
    ("one\ntwo\nthree\nfour", "one\ntwo\nthree"),
    ("y" * 1000, "y" * persona_summary.SUMMARY_CHARS),
    (" \n ", None),
])
def test_summaries_are_cut_to_a_few_lines_and_characters(answer: str, summary: str | None):
    assert parse(answer) == summary


def test_summaries_are_asked_with_the_extractive_persona_and_an_empty_answer_keeps_it():
    server = Server(completion("Asks about Python; wants code."), completion(""), completion(""))
    coder = history("coder", ["How do I parse JSON in Python?", "Python pandas merge?"])
    cook = history("cook", ["A recipe for bread?"])
    personas = extract_personas([coder, cook])
    assert summariser(server).summaries(personas, [coder, cook]) == ["Asks about Python; wants code.", None]
    sent = server.requests[0]
    assert sent["max_tokens"] == persona_summary.SUMMARY_TOKENS
    assert f"Extractive profile:\n{personas[0].summary}" in sent["messages"][1]["content"]
    assert len(server.requests) == 3  # the empty answer was asked again once, with the reminder


def test_an_unreachable_summariser_says_what_to_check(monkeypatch):
    monkeypatch.setattr(chat, "BACKOFF_S", 0.001)
    quiet = history("quiet", ["Hello there, how are you?"])
    config = JudgeConfig(url=f"http://127.0.0.1:{free_port()}/v1", model="m", retries=1)
    with pytest.raises(TacitError, match="did not answer after 2 attempts.*TACIT_LLM_URL"):
        PersonaSummariser(config).summaries(extract_personas([quiet]), [quiet])
