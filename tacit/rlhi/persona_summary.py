"""The LLM persona summariser: a few sentences about a user, written from their extractive persona.

The extractive profile says *what* recurs (topics, languages, formats, corrections) but reads as a word
list; a model can say it as a profile ("writes Python, wants short answers in English, often points out
wrong versions"). It sees only bounded input: the extractive summary and the user's latest messages, each
cut, so a long history costs the same as a short one. Its output is bounded too (``max_tokens``, then cut
to a few lines and characters); an empty answer keeps the extractive summary for that user. The profile
JSON stored is always the extractive one: the summary is traceable to it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import httpx

from tacit.core.llm import JudgeConfig, Question, StrictChat
from tacit.core.settings import TacitSettings
from tacit.rlhi.personas import Persona, UserHistory

log = logging.getLogger(__name__)

METHOD = "llm"
RECENT_MESSAGES = 8
MESSAGE_CHARS = 300  # so a prompt is at most about 8 * 300 characters of messages plus the profile
SUMMARY_TOKENS = 96
SUMMARY_LINES = 3
SUMMARY_CHARS = 400

SYSTEM = """You write a short profile of a chatbot user for a reward model: what they ask about, the \
languages they write in, the answer formats they prefer, and what they often correct. Use only the facts \
given; do not guess age, gender or identity, and repeat no personal data. Answer with the profile only: \
at most three short sentences, no preamble."""

REMINDER = "Answer with the profile only: at most three short sentences."


def parse(answer: str) -> str | None:
    """The answer's first lines, cut to size; None when it is empty."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    return "\n".join(lines[:SUMMARY_LINES])[:SUMMARY_CHARS] or None


def render(persona: Persona, history: UserHistory) -> str:
    recent = [message[:MESSAGE_CHARS] for message in history.messages[-RECENT_MESSAGES:]]
    return (f"Extractive profile:\n{persona.summary or '(nothing recurs yet)'}\n\n"
            "Their latest messages:\n" + "\n".join(f"- {message}" for message in recent))


PROFILE = Question("persona", SYSTEM, REMINDER, parse)


class PersonaSummariser:
    method = METHOD

    def __init__(self, config: JudgeConfig, client: httpx.Client | None = None) -> None:
        self.chat = StrictChat(replace(config, max_tokens=SUMMARY_TOKENS), PROFILE, client)

    @classmethod
    def from_settings(cls, settings: TacitSettings) -> PersonaSummariser:
        return cls(JudgeConfig.from_settings(settings))

    def summaries(self, personas: Sequence[Persona], histories: Sequence[UserHistory]) -> list[str | None]:
        """One summary per persona; None (keep the extractive one) where the model answered nothing."""
        summaries = self.chat.ask_all([render(p, h) for p, h in zip(personas, histories, strict=True)])
        empty = sum(summary is None for summary in summaries)
        if empty:
            log.warning("%d of %d persona summaries came back empty; those users keep the extractive one",
                        empty, len(summaries))
        return summaries
