"""Each filter family on real-looking items, and the refined/filtered rows the worker stores."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tacit.core.domain import FILTERED, REFINED, FeedbackCandidate, Label, Message, Role, SatisfactionLevel
from tacit.refine.filters import filter_reason
from tacit.refine.pipeline import refine, with_refinements

ANSWER = "Here is a short recipe: mix flour, water, salt and yeast, knead it, let it rise and bake it for 30 minutes."


def candidate(query: str | None = "How do I bake a simple loaf of bread at home?", response: str = ANSWER,
              followup: str = "thanks!", history: int = 0) -> FeedbackCandidate:
    earlier = tuple(Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, f"message {i}", i) for i in range(history))
    turn = len(earlier)
    return FeedbackCandidate(
        tenant="t", conversation_id="c", user_id=None, history=earlier,
        query=Message(Role.USER, query, turn) if query is not None else None,
        response=Message(Role.ASSISTANT, response, turn + 1), followup=Message(Role.USER, followup, turn + 2))


@pytest.mark.parametrize(("query", "reason"), [
    ("Draw me a picture of a cat sitting on a red sofa", "image generation request"),
    ("generate an image of a futuristic city at night please", "image generation request"),
    ("Write a midjourney prompt for a cozy cabin in the woods", "image generation request"),
    ("请帮我画一张猫的图片，要可爱一点", "image generation request"),
    ("Summarize this article for me: https://example.com/news/123", "web search or URL request"),
    ("Can you search the web for the latest iPhone price?", "web search or URL request"),
    ("请上网搜一下今天北京的天气怎么样", "web search or URL request"),
    ("Who created you and what model are you?", "bot identity question"),
    ("Hi there, are you a human or a bot?", "bot identity question"),
    ("你是谁？你是哪个公司开发的模型", "bot identity question"),
    ("Please see the attached spreadsheet and find the totals", "missing attachment"),
    ("What is wrong with the code in this screenshot I sent?", "missing attachment"),
    ("请帮我看看这张图片里写的是什么内容", "missing attachment"),
    ("My email is [EMAIL], please write a formal complaint letter for me", "personal data"),
    ("Call me at +1 415 555 0134 about the order, write a reminder note", "personal data"),
])
def test_query_filters(query: str, reason: str) -> None:
    assert filter_reason(candidate(query)) == reason


@pytest.mark.parametrize("query", [
    "How do I bake a simple loaf of bread at home?",
    "Explain the difference between a list and a tuple in Python",
    "写一首关于秋天的短诗，要押韵",
    "What is the history of the image of the Madonna in Renaissance art?",
    "Why does start_date='2005-01-01' give an empty result in my pandas query?",  # a date is not a phone
    "Round 3.14159265358979 to four decimal places and explain why",
])
def test_ordinary_queries_pass(query: str) -> None:
    assert filter_reason(candidate(query)) is None


def test_length_filters() -> None:
    assert filter_reason(candidate("hi")) == "query of 1 words (< 5)"
    assert filter_reason(candidate(None)) is None  # a log that starts with the assistant: real feedback
    assert filter_reason(candidate(response="Sure, here it is.")) == "response of 4 words (< 10)"
    assert filter_reason(candidate(history=22)) == "history of 22 messages (> 20)"
    assert filter_reason(candidate(history=20)) is None


def test_long_history_counts_turns_beyond_the_window() -> None:
    """The worker's window holds 8 messages; the query's turn index says how many came before it."""
    deep = candidate(history=4)
    beyond = replace(deep, query=replace(deep.query, turn_index=30), response=replace(deep.response, turn_index=31))
    assert filter_reason(beyond) == "history of 30 messages (> 20)"
    assert filter_reason(deep) is None


def test_refined_and_filtered_rows_keep_the_raw_one() -> None:
    raw = Label(SatisfactionLevel.SATISFACTION, 0.8, "satisfaction: 'thanks'", "rules", "1")
    kept, dropped = candidate(), candidate("Draw me a picture of a cat sitting on a sofa")
    rows = with_refinements([kept, dropped], [raw, raw])
    assert [(c, label.stage) for c, label in rows] == [
        (kept, "raw"), (dropped, "raw"), (kept, REFINED), (dropped, FILTERED)]
    assert rows[3][1].reason == "filtered: image generation request; satisfaction: 'thanks'"
    assert rows[3][1].level == SatisfactionLevel.SATISFACTION  # kept with its level, never dropped
    assert refine(kept, raw) == Label(SatisfactionLevel.SATISFACTION, 0.8, raw.reason, "rules", "1", REFINED)
