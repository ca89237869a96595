"""The rules labeler: each phrase family in English and Chinese, negations, the conservative default."""

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest

from tacit.core.domain import FeedbackCandidate, Label, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.labels import get_labeler
from tacit.labels.rules import FAMILIES, HEAD_CHARS, NEUTRAL_CONFIDENCE, RulesLabeler

HH_RLHF = Path(__file__).parents[2].parent / "shared" / "data" / "hh-rlhf"

REJECTION, CORRECTION, NEUTRAL, ENGAGED, SATISFIED = SatisfactionLevel

LABELER = RulesLabeler()


def candidate(followup: str, response: str = "Here is how you do it: first, ...") -> FeedbackCandidate:
    return FeedbackCandidate(
        tenant="acme", conversation_id="c1", user_id="u1", history=(),
        query=Message(Role.USER, "How do I sort a list?", 0),
        response=Message(Role.ASSISTANT, response, 1),
        followup=Message(Role.USER, followup, 2),
    )


def label(followup: str, response: str = "Here is how you do it: first, ...") -> Label:
    return LABELER.label([candidate(followup, response)])[0]


@pytest.mark.parametrize(
    ("followup", "family"),
    [
        ("This is useless.", "rejection"),
        ("You're not helping at all.", "rejection"),
        ("That was not very helpful.", "rejection"),
        ("Forget it.", "rejection"),
        ("没用", "rejection"),
        ("你的回答是垃圾", "rejection"),
        ("胡说八道！", "rejection"),
        ("That's wrong, the capital is Canberra.", "correction"),
        ("You forgot the imports.", "correction"),
        ("That's not what I asked. I want the total.", "correction"),
        ("No, I meant the new address.", "correction"),
        ("You are missing one key ingredient.", "correction"),
        ("不对，应该是 10。", "correction"),
        ("你算错了", "correction"),
        ("我问的是明天的天气", "correction"),
        ("It doesn't work, I get a TypeError.", "broken"),
        ("I ran it and got an error.", "broken"),
        ("还是报错", "broken"),
        ("运行不了", "broken"),
        ("Are you sure? I thought it was 1969.", "doubt"),
        ("你确定吗？", "doubt"),
        ("Great, now can you also add logging?", "positive_engagement"),
        ("Thanks! What about sorting by two keys?", "positive_engagement"),
        ("That sounds helpful. Are there any side effects?", "positive_engagement"),
        ("太好了，那能不能再加一个例子？", "positive_engagement"),
        ("谢谢！还有别的办法吗？", "positive_engagement"),
        ("Thanks, that solved it!", "satisfaction"),
        ("Perfect, that's all I need.", "satisfaction"),
        ("It works now!", "satisfaction"),
        ("谢谢！", "satisfaction"),
        ("太好了，解决了", "satisfaction"),
    ],
)
def test_each_family_fires_with_its_level(followup, family):
    result = label(followup)
    by_name = {f.name: f for f in FAMILIES}
    assert result.reason.startswith(f"{family}:"), result.reason
    assert result.level == by_name[family].level
    assert result.confidence == by_name[family].confidence


@pytest.mark.parametrize(
    ("followup", "response", "level"),
    [
        ("In Python please.", "```java\nclass Main {}\n```", CORRECTION),
        ("In Python please.", "```python\nprint(1)\n```", NEUTRAL),
        ("Please answer in English.", "你好，这是答案。", CORRECTION),
        ("Please answer in English.", "Hello, here is the answer.", NEUTRAL),
        ("请用中文回答", "Here is the answer in English.", CORRECTION),
        ("请用中文回答", "这是中文的答案。", NEUTRAL),
    ],
)
def test_asking_for_a_language_corrects_only_a_reply_in_another(followup, response, level):
    assert label(followup, response).level == level


@pytest.mark.parametrize(
    ("followup", "level"),
    [
        ("No thanks.", NEUTRAL),
        ("Thanks anyway.", NEUTRAL),
        ("Thanks in advance, how do I install it?", NEUTRAL),
        ("Thank you, but it still crashes on start.", NEUTRAL),
        ("That's not helpful.", REJECTION),
        ("That isn't useful.", REJECTION),
        ("Thanks, but that's wrong.", CORRECTION),
        ("That's not wrong, just slow.", NEUTRAL),
        ("Not quite correct: it's 1969.", CORRECTION),
        ("If that doesn't work, what should I try?", NEUTRAL),
        ("不用谢", NEUTRAL),
        ("有没有用？", NEUTRAL),
        ("我没用过这个库", NEUTRAL),
        ("这个问题有没有解决办法？", NEUTRAL),
        ("不错，那怎么部署？", ENGAGED),
    ],
)
def test_negations(followup, level):
    assert label(followup).level == level


@pytest.mark.parametrize(
    "followup",
    [
        "And what about Rust?",
        "OK, and how about sorting in reverse?",
        "Yes, tell me more about the second one.",
        "Okay. Now how do I deploy it?",
        "Interesting. What about the Romans?",
        "Can you explain step 2?",
        "那第二步呢？",
        "好的，继续",
    ],
)
def test_neutral_continuations(followup):
    assert label(followup).level == NEUTRAL


@pytest.mark.parametrize(
    "followup",
    [
        "Great Britain has how many counties?",
        "Is it a good idea to water them daily?",
        "Is it wrong to eat raw cookie dough?",
        "What's a perfect gift for my dad?",
        "Thanksgiving is next week, what should I cook?",
        "I got a new job but my car is broken.",
        "很好奇，这是怎么做到的？",
    ],
)
def test_a_continued_topic_is_not_praise_or_criticism(followup):
    """Praise or blame words about the world, not the reply, stay neutral."""
    assert label(followup).level == NEUTRAL


def test_praise_without_extension_is_satisfaction_and_with_it_engagement():
    assert label("Great!").level == SATISFIED
    assert label("Great! Any other ideas?").level == ENGAGED
    assert label("Great! Why?").level == SATISFIED  # one word is no meaningful extension


def test_feedback_past_the_head_is_ignored():
    assert label("x " * HEAD_CHARS + "thanks!").level == NEUTRAL


def test_neutral_is_less_confident_than_any_family():
    assert label("What time is it in Tokyo?").confidence == NEUTRAL_CONFIDENCE
    assert all(family.confidence > NEUTRAL_CONFIDENCE for family in FAMILIES)


def test_batch_keeps_order_and_provenance():
    followups = ["Thanks!", "That's wrong.", "And then?", "This is useless."]
    labels = LABELER.label([candidate(text) for text in followups])
    assert [result.level for result in labels] == [SATISFIED, CORRECTION, NEUTRAL, REJECTION]
    assert {(result.labeler_id, result.labeler_version, result.stage) for result in labels} == {
        ("rules", RulesLabeler.version, "raw")
    }
    assert LABELER.label([]) == []


def test_family_names_are_unique():
    names = [family.name for family in FAMILIES]
    assert len(names) == len(set(names))


def test_registry():
    assert isinstance(get_labeler("rules"), RulesLabeler)
    with pytest.raises(TacitError, match="one of: rules, embedding, llm, cascade"):
        get_labeler("gpt")


def hh_rlhf_followups(path: Path) -> Iterator[FeedbackCandidate]:
    """Human turns that answer an assistant turn, from the shared "chosen" transcripts."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            parts = re.split(r"\n\n(Human|Assistant): ", json.loads(line)["chosen"])
            turns = [Message(Role.USER if role == "Human" else Role.ASSISTANT, text, i)
                     for i, (role, text) in enumerate(zip(parts[1::2], parts[2::2]))]
            for query, response, followup in zip(turns, turns[1:], turns[2:]):
                if query.role == followup.role == Role.USER and response.role == Role.ASSISTANT:
                    yield FeedbackCandidate("hh", "c", None, (), query, response, followup)


@pytest.mark.skipif(not HH_RLHF.is_dir(), reason=f"shared data not found at {HH_RLHF}")
def test_real_followups_are_mostly_neutral():
    files = sorted(HH_RLHF.glob("*.jsonl.gz"))
    candidates = [c for path in files for c in islice(hh_rlhf_followups(path), 500)]
    counts = Counter(result.level for result in LABELER.label(candidates))
    print({level.name: counts[level] for level in SatisfactionLevel})
    assert len(candidates) == 2000
    assert counts[NEUTRAL] / len(candidates) > 0.8
    assert counts[SATISFIED] + counts[ENGAGED] > 0 and counts[CORRECTION] + counts[REJECTION] > 0
