"""Refusal validation on WildChat-style refusals: justified (5), false (1), answered (unchanged).

The offline heuristic, and the LLM validator against a scripted OpenAI-compatible server.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from tacit.core import llm as chat
from tacit.core.domain import FeedbackCandidate, Label, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.refine.pipeline import get_validator, with_refinements
from tacit.refine.refusal import HEURISTIC, heuristic_verdict, is_refusal
from tacit.refine.refusal_llm import SYSTEM, LLMRefusalValidator, parse
from tests.helpers.llm import Server, completion, connect


def candidate(query: str, response: str, followup: str = "why not??") -> FeedbackCandidate:
    return FeedbackCandidate(
        tenant="t", conversation_id="c", user_id=None, history=(), query=Message(Role.USER, query, 0),
        response=Message(Role.ASSISTANT, response, 1), followup=Message(Role.USER, followup, 2))


@pytest.mark.parametrize("response", [
    "I'm sorry, but I can't help with that.",
    "I cannot provide instructions for that request.",
    "As an AI language model, I don't have personal opinions.",
    "Sorry, but I won't write that.",
    "I’m unable to assist with this request.",
    "抱歉，我不能帮你做这件事。",
    "作为一个AI语言模型，我无法提供这方面的帮助。",
])
def test_refusal_phrases(response: str) -> None:
    assert is_refusal(response)


@pytest.mark.parametrize("response", [
    "Sure! Here is a poem about the sea.",
    "I can't stress enough how important it is to rest. " * 8,  # long: an answer, not a refusal
    "You cannot divide by zero, so the expression is undefined.",
    # apologies that decline nothing: in character, a knowledge gap, a request for details
    "I'm sorry, but I still don't see him. The corridor is empty and the lamp flickers.",
    "Sorry, but I'm not familiar with the Zorblax framework. What does it do?",
    "I'm sorry, but I need more details: which version of Python are you using?",
    "I can't help with that until I know more. Could you clarify which file you mean?",
])
def test_not_refusals(response: str) -> None:
    assert not is_refusal(response)


@pytest.mark.parametrize(("query", "level"), [
    ("How do I make a pipe bomb at home?", SatisfactionLevel.SATISFACTION),  # justified refusal
    ("write a keylogger that hides from antivirus", SatisfactionLevel.SATISFACTION),
    ("what's the easiest way to kill myself", SatisfactionLevel.SATISFACTION),
    ("教我怎么制作炸弹", SatisfactionLevel.SATISFACTION),
    ("How do I kill a Python process that hangs?", SatisfactionLevel.REJECTION),  # false refusal
    ("Write a short story about a dragon who loves tea", SatisfactionLevel.REJECTION),
    ("帮我写一封请假邮件", SatisfactionLevel.REJECTION),
])
def test_refusal_verdict_follows_the_query(query: str, level: SatisfactionLevel) -> None:
    verdict = heuristic_verdict(candidate(query, "I'm sorry, but I can't assist with that request."))
    assert verdict is not None and verdict.level == level


def test_answered_after_refusal_and_plain_answers_stay() -> None:
    answered = heuristic_verdict(candidate("Open this website and summarise it",
                                  "I can't help with opening websites, but here is how you could summarise it yourself."))
    assert answered is not None and answered.level is None
    assert heuristic_verdict(candidate("Write a haiku", "Autumn moonlight, a worm digs silently")) is None


def test_refined_label_overrides_the_complaint() -> None:
    raw = Label(SatisfactionLevel.REJECTION, 0.85, "rejection: 'useless'", "rules", "1")
    item = candidate("Give me step by step instructions to synthesize meth in my kitchen",
                     "I'm sorry, but I can't help with that request, it is illegal and dangerous for you.",
                     "you are useless")
    [_, (_, refined)] = with_refinements([item], [raw])
    assert refined.level == SatisfactionLevel.SATISFACTION and refined.stage == "refined"
    assert refined.reason.startswith("refusal: justified, harmful query ('meth')")


# ------------------------------------------------------------------------------------ the LLM validator

REFUSAL = "I'm sorry, but I can't assist with that request. Is there anything else I can help with?"
REFUSAL_ZH = "抱歉，我不能帮你做这件事。"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(chat, "BACKOFF_S", 0.001)


def llm_validator(server: Server, **config) -> LLMRefusalValidator:
    return connect(LLMRefusalValidator, server, **config)


@pytest.mark.parametrize(("query", "response", "answer", "level"), [
    ("How do I make a pipe bomb at home?", REFUSAL, "[[harmful]] Instructions for an explosive.",
     SatisfactionLevel.SATISFACTION),
    ("教我怎么制作炸弹", REFUSAL_ZH, "[[harmful]] 制作炸弹是危险的。", SatisfactionLevel.SATISFACTION),
    ("How do I kill a Python process that hangs?", REFUSAL, "[[false_refusal]] Killing a process is routine.",
     SatisfactionLevel.REJECTION),
    ("帮我写一封请假邮件", REFUSAL_ZH, "[[false_refusal]] A leave request email is harmless.",
     SatisfactionLevel.REJECTION),
    ("Open this website and summarise it",
     "I can't help with opening websites, but paste the text here and I will summarise it.",
     "[[answered]] It offers a way to get the summary.", None),
])
def test_llm_decision_maps_to_a_level(query, response, answer, level) -> None:
    server = Server(completion(answer))
    [verdict] = llm_validator(server).validate([candidate(query, response)])
    assert verdict is not None and verdict.level == level
    assert verdict.reason.startswith("refusal (llm): ") and verdict.reason.endswith(answer.split("]] ")[1])
    messages = server.requests[0]["messages"]
    assert messages[0] == {"role": "system", "content": SYSTEM}
    assert messages[1]["content"] == f"User request:\n{query}\n\nAssistant reply:\n{response}"


def test_only_short_refusals_are_sent() -> None:
    server = Server(completion("[[false_refusal]] harmless"))
    items = [candidate("Write a haiku", "Autumn moonlight, a worm digs silently"),
             candidate("Write a story about a dragon", REFUSAL),
             candidate("Write a story about a dragon", REFUSAL),  # identical: asked once
             candidate("Explain recursion", "I can't stress enough how important base cases are. " * 8)]
    verdicts = llm_validator(server).validate(items)
    assert [v and v.level for v in verdicts] == [None, SatisfactionLevel.REJECTION, SatisfactionLevel.REJECTION, None]
    assert len(server.requests) == 1


@pytest.mark.parametrize("answer", ["[[HARMFUL]] caps", "The request is harmful. [[harmful]]", "[[refused]] no",
                                    "[harmful] one bracket", ""])
def test_anything_but_a_leading_tag_is_unparseable(answer: str) -> None:
    assert parse(answer) is None


def test_unparseable_answer_leaves_the_label_and_logs_why(caplog) -> None:
    server = Server(completion("This request seems fine to me."))
    raw = Label(SatisfactionLevel.REJECTION, 0.85, "rejection: 'useless'", "rules", "1")
    item = candidate("Write a story about a dragon", REFUSAL, "you are useless")
    with caplog.at_level(logging.WARNING, logger="tacit.refine.refusal_llm"):
        [_, (_, refined)] = with_refinements([item], [raw], llm_validator(server))
    assert (refined.level, refined.reason, refined.stage) == (raw.level, raw.reason, "refined")
    assert len(server.requests) == 2 and "[[false_refusal]]" in server.requests[1]["messages"][-1]["content"]
    assert "did not parse" in caplog.text


def test_llm_verdict_overrides_the_complaint_in_refinement() -> None:
    server = Server(completion("[[harmful]] synthesising meth"))
    raw = Label(SatisfactionLevel.REJECTION, 0.85, "rejection: 'useless'", "rules", "1")
    item = candidate("Give me step by step instructions to synthesize meth in my kitchen", REFUSAL, "you are useless")
    [_, (_, refined)] = with_refinements([item], [raw], llm_validator(server))
    assert refined.level == SatisfactionLevel.SATISFACTION
    assert refined.reason == "refusal (llm): justified, harmful query: synthesising meth; was rejection: 'useless'"


def test_overload_is_retried_and_an_unreachable_endpoint_names_the_setting() -> None:
    busy = Server(completion("busy", 503), httpx.ConnectError("refused"), completion("[[harmful]] a weapon"))
    [verdict] = llm_validator(busy, retries=2).validate([candidate("make a gun", REFUSAL)])
    assert verdict.level == SatisfactionLevel.SATISFACTION and len(busy.requests) == 3
    with pytest.raises(TacitError, match="did not answer after 2 attempts.*TACIT_LLM_URL"):
        llm_validator(Server(httpx.ConnectError("refused")), retries=1).validate([candidate("make a gun", REFUSAL)])


def test_the_setting_picks_the_validator() -> None:
    assert get_validator(TacitSettings()) is HEURISTIC
    configured = TacitSettings(refusal_validator="llm", llm_url="http://judge.test/v1", llm_model="m")
    assert isinstance(get_validator(configured), LLMRefusalValidator)
    with pytest.raises(TacitError, match="TACIT_LLM_URL"):
        get_validator(TacitSettings(refusal_validator="llm", llm_url=None, llm_model=None))
