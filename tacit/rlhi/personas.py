"""Personas: a short, extractive profile of each user, built from everything they have said.

RLHI conditions training on a profile of the user's long-term preferences. This one is extracted, not
generated: the words that set the user's messages apart from other users' (TF-IDF over one document per
user), the languages they write in, the formats of the replies they accepted, and the words that recur in
their corrections. It is cheap, needs no model, and every item of it can be traced back to their messages. With a
summariser (`tacit personas build --method llm`, :mod:`tacit.rlhi.persona_summary`) an LLM rewrites it as a few
sentences; the profile JSON stays the extractive one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased

from tacit.core.db import FeedbackRow, MessageRow, PersonaRow

METHOD = "extractive"
TOP_TOPICS = 5
MIN_LANGUAGE_SHARE = 0.2  # a language the user wrote at least this share of their messages in
MIN_FORMAT_SHARE = 0.5  # a format at least this share of the replies they accepted had
WORDS = r"(?u)\b[^\W\d_]{3,}\b"  # words of three letters or more: no numbers, no "ok"

FORMATS = {
    "code": re.compile(r"```|^(?: {4}|\t)\S", re.MULTILINE),
    "lists": re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE),
    "short answers": re.compile(r"^\W*(?:\S+\s+){0,59}\S*\W*$"),  # at most 60 words
}


@dataclass
class UserHistory:
    """What a profile is extracted from: one user's messages and their verdicts on the replies."""

    tenant: str
    user_id: str
    messages: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)  # of the messages that had one
    accepted_replies: list[str] = field(default_factory=list)  # replies they rated 4-5
    corrections: list[str] = field(default_factory=list)  # their follow-ups rated 1-2


@dataclass(frozen=True)
class Persona:
    tenant: str
    user_id: str
    topics: tuple[str, ...]
    languages: tuple[str, ...]
    formats: tuple[str, ...]
    corrections: tuple[str, ...]
    num_messages: int

    @property
    def summary(self) -> str:
        """One line per known trait: what the persona section of a layout or a DPO prompt shows."""
        traits = {
            "Topics": self.topics,
            "Languages": self.languages,
            "Prefers": self.formats,
            "Often corrects": self.corrections,
        }
        return "\n".join(f"{name}: {', '.join(values)}" for name, values in traits.items() if values)

    @property
    def profile(self) -> dict[str, list[str]]:
        return {"topics": list(self.topics), "languages": list(self.languages), "formats": list(self.formats),
                "corrections": list(self.corrections)}


def extract_personas(histories: Sequence[UserHistory]) -> list[Persona]:
    """A persona per user; topics are weighed against the other users given, so pass them all at once."""
    topics = _topics([" ".join(history.messages) for history in histories])
    return [
        Persona(history.tenant, history.user_id, user_topics, _languages(history.languages),
                _formats(history.accepted_replies), _recurring(history.corrections), len(history.messages))
        for history, user_topics in zip(histories, topics)
    ]


def _topics(documents: list[str]) -> list[tuple[str, ...]]:
    try:
        weights = (vectorizer := TfidfVectorizer(stop_words="english", token_pattern=WORDS)).fit_transform(documents)
    except ValueError:  # no word left in any document
        return [()] * len(documents)
    terms = vectorizer.get_feature_names_out()
    topics = []
    for row in weights:
        ranked = sorted(zip(row.data, row.indices), key=lambda item: (-item[0], terms[item[1]]))
        topics.append(tuple(str(terms[index]) for _, index in ranked[:TOP_TOPICS]))
    return topics


def _languages(languages: list[str]) -> tuple[str, ...]:
    counts = Counter(languages)
    return tuple(language for language, count in counts.most_common() if count >= MIN_LANGUAGE_SHARE * len(languages))


def _formats(replies: list[str]) -> tuple[str, ...]:
    if not replies:
        return ()
    return tuple(name for name, pattern in FORMATS.items()
                 if sum(bool(pattern.search(reply)) for reply in replies) >= MIN_FORMAT_SHARE * len(replies))


def _recurring(corrections: list[str]) -> tuple[str, ...]:
    """Words found in at least two of the user's corrections, most frequent first."""
    if len(corrections) < 2:
        return ()
    try:
        counts = (vectorizer := CountVectorizer(stop_words="english", token_pattern=WORDS, binary=True)).fit_transform(
            corrections).sum(axis=0).A1
    except ValueError:
        return ()
    ranked = sorted(zip(counts, vectorizer.get_feature_names_out()), key=lambda item: (-item[0], item[1]))
    return tuple(str(term) for count, term in ranked[:TOP_TOPICS] if count >= 2)


# ------------------------------------------------------------------------------------------------ storage


class Summariser(Protocol):
    """Rewrites extractive personas as prose; None for a user keeps the extractive summary."""

    method: str

    def summaries(self, personas: Sequence[Persona], histories: Sequence[UserHistory]) -> list[str | None]: ...


def build_personas(engine: Engine, tenant: str | None = None, stages: tuple[str, ...] = ("raw",),
                   summariser: Summariser | None = None) -> int:
    """Rebuild the persona of every user with a known id and upsert it; returns how many were written."""
    histories = load_histories(engine, tenant, stages)
    personas = extract_personas(histories)
    summaries = summariser.summaries(personas, histories) if summariser and personas else [None] * len(personas)
    if personas:
        with engine.begin() as connection:
            connection.execute(_UPSERT, [
                {"tenant": persona.tenant, "user_id": persona.user_id,
                 "method": METHOD if summary is None else summariser.method, "profile": persona.profile,
                 "summary": summary or persona.summary, "num_messages": persona.num_messages}
                for persona, summary in zip(personas, summaries, strict=True)
            ])
    return len(personas)


def refresh_due(engine: Engine, tenant: str | None, max_age: timedelta) -> bool:
    """Whether personas should be rebuilt: there are none yet, or the oldest is older than ``max_age``.

    A rebuild rewrites every persona, so the oldest one says when the last full rebuild was; the database's
    clock decides, as it wrote ``updated_at``.
    """
    oldest = select(func.min(PersonaRow.updated_at))
    if tenant is not None:
        oldest = oldest.where(PersonaRow.tenant == tenant)
    with engine.connect() as connection:
        return connection.scalar(select(func.coalesce(oldest.scalar_subquery() < func.now() - max_age, True)))


def load_histories(engine: Engine, tenant: str | None, stages: tuple[str, ...]) -> list[UserHistory]:
    histories: dict[tuple[str, str], UserHistory] = {}

    def history(row) -> UserHistory:
        key = (row.tenant, row.user_id)
        return histories.setdefault(key, UserHistory(*key))

    messages = select(MessageRow.tenant, MessageRow.user_id, MessageRow.content, MessageRow.language).where(
        MessageRow.role == "user", MessageRow.user_id.is_not(None)).order_by(MessageRow.id)
    response, followup = aliased(MessageRow), aliased(MessageRow)
    verdicts = (
        select(FeedbackRow.tenant, FeedbackRow.user_id, FeedbackRow.level, response.content.label("response"),
               followup.content.label("followup"))
        .join(response, and_(response.tenant == FeedbackRow.tenant,
                             response.conversation_id == FeedbackRow.conversation_id,
                             response.turn_index == FeedbackRow.response_turn))
        .join(followup, and_(followup.tenant == FeedbackRow.tenant,
                             followup.conversation_id == FeedbackRow.conversation_id,
                             followup.turn_index == FeedbackRow.followup_turn))
        .where(FeedbackRow.user_id.is_not(None), FeedbackRow.stage.in_(stages), FeedbackRow.level != 3)
        .order_by(FeedbackRow.id)
    )
    if tenant is not None:
        messages = messages.where(MessageRow.tenant == tenant)
        verdicts = verdicts.where(FeedbackRow.tenant == tenant)
    with engine.connect() as connection:
        for row in connection.execute(messages):
            history(row).messages.append(row.content)
            if row.language:
                history(row).languages.append(row.language)
        for row in connection.execute(verdicts):
            if row.level >= 4:
                history(row).accepted_replies.append(row.response)
            else:
                history(row).corrections.append(row.followup)
    return list(histories.values())


def _upsert():
    new = insert(PersonaRow).excluded
    return insert(PersonaRow).on_conflict_do_update(
        constraint="uq_personas_key",
        set_={"method": new.method, "profile": new.profile, "summary": new.summary,
              "num_messages": new.num_messages, "updated_at": func.now()},
    )


_UPSERT = _upsert()
