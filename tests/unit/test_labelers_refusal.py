"""Refusal validation on WildChat-style refusals: justified (5), false (1), answered (unchanged)."""

from __future__ import annotations

import pytest

from labelers.refine import refine
from labelers.refusal import is_refusal, validate
from tacit.domain import FeedbackCandidate, Label, Message, Role, SatisfactionLevel


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
    verdict = validate(candidate(query, "I'm sorry, but I can't assist with that request."))
    assert verdict is not None and verdict.level == level


def test_answered_after_refusal_and_plain_answers_stay() -> None:
    answered = validate(candidate("Open this website and summarise it",
                                  "I can't help with opening websites, but here is how you could summarise it yourself."))
    assert answered is not None and answered.level is None
    assert validate(candidate("Write a haiku", "Autumn moonlight, a worm digs silently")) is None


def test_refined_label_overrides_the_complaint() -> None:
    raw = Label(SatisfactionLevel.REJECTION, 0.85, "rejection: 'useless'", "rules", "1")
    item = candidate("Give me step by step instructions to synthesize meth in my kitchen",
                     "I'm sorry, but I can't help with that request, it is illegal and dangerous for you.",
                     "you are useless")
    refined = refine(item, raw)
    assert refined.level == SatisfactionLevel.SATISFACTION and refined.stage == "refined"
    assert refined.reason.startswith("refusal: justified, harmful query ('meth')")
