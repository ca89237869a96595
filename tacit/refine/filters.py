"""Filters: items a reward model should not learn from, each named by the reason it is left out.

WildReward drops items whose query asks for something a text-only chatbot cannot judge fairly (image
generation, web search or URLs, its own identity, files the user never attached), items with personal data,
histories over 20 messages, replies under 10 words and queries under 5. Tacit keeps such items, labeled
with the reason, so that a changed filter is re-applied by `tacit relabel` instead of losing data for good.

Each filter is a pure function of the candidate that returns its reason or None; :func:`filter_reason`
gives the first reason that applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice

from tacit.core.domain import FeedbackCandidate
from tacit.core.privacy import redact

MAX_HISTORY_MESSAGES = 20
MIN_RESPONSE_WORDS = 10
MIN_QUERY_WORDS = 5
# Requests sit at the query's start; a pasted document's "search" or "image" says nothing about the ask.
HEAD_CHARS = 600

Filter = Callable[[FeedbackCandidate], str | None]

# A word of a spaced script, or one Han character (Chinese has no spaces; a character is about a word).
_HAN = "\u3400-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_HAN}]|[^\W\d_{_HAN}]+(?:'[^\W\d_{_HAN}]+)?|\d+")
# The tags the worker's redaction leaves (ingest/privacy.py), and the raw forms where redaction is off.
_PII_TAG = re.compile(r"\[(?:EMAIL|CARD|IP|PHONE|SECRET)\]")


def _asks(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns), re.IGNORECASE)


_IMAGE_GENERATION = _asks(
    r"\b(?:draw|paint|sketch|generate|create|make|render|design|produce)\b(?: me)?(?: an?| the| some)?"
    r"(?: \w+){0,3} (?:image|picture|photo|drawing|painting|illustration|logo|portrait|wallpaper)s?\b",
    r"\b(?:midjourney|dall-?e|stable diffusion)\b", r"(?:画|生成)[^，。！？,.!?]{0,8}(?:图|画|照片|头像|logo)",
)
_SEARCH_OR_URL = _asks(
    r"https?://", r"\bwww\.\w", r"\b(?:search|google|browse|look up)\b (?:the |on the )?(?:web|internet|online)",
    r"\b(?:search|google) (?:for|it)\b", r"\b(?:open|visit|check|read|summari[sz]e) (?:this|the|that) "
    r"(?:link|url|website|site|web ?page|article)\b", r"(?:上网|联网|网上)(?:搜|查)", r"搜索一下", r"百度一下", r"(?:这个|打开)链接",
)
_BOT_IDENTITY = _asks(
    r"\bwho (?:are|made|created|built|trained) you\b", r"\bwhat(?:'s| is) your name\b",
    r"\bare you (?:an? )?(?:ai|bot|robot|human|chatgpt|gpt|real|a person)\b",
    r"\bwhat (?:model|version|llm|language model) are you\b", r"\bwhich (?:model|version|gpt) are you\b",
    r"你是谁", r"你叫什么", r"你是(?:什么|哪个)模型", r"你是(?:人|机器人|chatgpt|gpt)", r"谁(?:开发|训练|创造)了你",
)
_ATTACHMENT = _asks(
    r"\b(?:see|find|check|in|from|read) (?:the )?attached\b", r"\battach(?:ed|ment)\b",
    r"\b(?:this|these|my|the (?:attached|above|following)) (?:image|picture|photo|screenshot|pdf|file|document|"
    r"spreadsheet)s?\b",
    r"(?:这张|这个|上面的|附件(?:里|中)?的?)(?:图|图片|截图|文件|文档|表格)", r"附件",
)


def words(text: str, at_most: int) -> int:
    """Words of ``text``, counted up to ``at_most``: a length check need not read a long reply to its end."""
    return sum(1 for _ in islice(_WORD.finditer(text), at_most))


def _query_text(candidate: FeedbackCandidate) -> str:
    return candidate.query.content[:HEAD_CHARS] if candidate.query else ""


def _asks_for(pattern: re.Pattern[str], reason: str) -> Filter:
    def check(candidate: FeedbackCandidate) -> str | None:
        return reason if pattern.search(_query_text(candidate)) else None
    return check


def missing_attachment(candidate: FeedbackCandidate) -> str | None:
    """The query points at a file or image, which a text log never holds: the reply could not see it."""
    return "missing attachment" if _ATTACHMENT.search(_query_text(candidate)) else None


def personal_data(candidate: FeedbackCandidate) -> str | None:
    """In the user's messages, where personal data comes from: as redaction tags, or raw if not redacted
    (judged exactly as redaction judges it, so a date or a decimal is not a phone number here either)."""
    texts = [m.content for m in (candidate.query, candidate.followup) if m]
    found = any(_PII_TAG.search(text) or redact(text) != text for text in texts)
    return "personal data" if found else None


def long_history(candidate: FeedbackCandidate) -> str | None:
    """Counted from the query's turn index: the worker keeps only a window of recent messages, so
    ``history`` holds at most the window and alone could never exceed the limit."""
    count = max(len(candidate.history), (candidate.query or candidate.response).turn_index)
    return f"history of {count} messages (> {MAX_HISTORY_MESSAGES})" if count > MAX_HISTORY_MESSAGES else None


def short_response(candidate: FeedbackCandidate) -> str | None:
    count = words(candidate.response.content, MIN_RESPONSE_WORDS)
    return f"response of {count} words (< {MIN_RESPONSE_WORDS})" if count < MIN_RESPONSE_WORDS else None


def short_query(candidate: FeedbackCandidate) -> str | None:
    """Only a query that is there: a log that starts mid-chat with an assistant turn has none, and its
    first follow-up is real feedback on the reply all the same."""
    if candidate.query is None:
        return None
    count = words(candidate.query.content, MIN_QUERY_WORDS)
    return f"query of {count} words (< {MIN_QUERY_WORDS})" if count < MIN_QUERY_WORDS else None


# Cheapest first: the length checks are what most filtered items fail.
FILTERS: tuple[Filter, ...] = (
    long_history, short_query, short_response,
    _asks_for(_IMAGE_GENERATION, "image generation request"),
    _asks_for(_SEARCH_OR_URL, "web search or URL request"),
    _asks_for(_BOT_IDENTITY, "bot identity question"),
    missing_attachment, personal_data,
)


def filter_reason(candidate: FeedbackCandidate) -> str | None:
    """Why the item should not be trained on, or None when it should."""
    return next((reason for check in FILTERS if (reason := check(candidate))), None)
