"""The RLHI test store: hand-made conversations of one tenant, rated as the worker leaves them."""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import FeedbackRow, MessageRow, PersonaRow, PreferencePairRow, SignalRow
from tacit.core.domain import REFINED, Role

TENANT = "rlhi-test"  # private to the modules that use it: the builds and exports see only its rows

# (conversation, user, [(role, content)], {response turn: level})
CONVERSATIONS = [
    ("fix", "ada", [(Role.USER, "Write a function that reverses a string."),
                    (Role.ASSISTANT, "function reverse(s) { return s.split('').reverse().join(''); }"),
                    (Role.USER, "No, I asked for Python."),
                    (Role.ASSISTANT, "```python\ndef reverse(s):\n    return s[::-1]\n```"),
                    (Role.USER, "Thanks, that works!")], {1: 2, 3: 5}),
    ("still-wrong", "ada", [(Role.USER, "Sort a Python dict by value."),
                            (Role.ASSISTANT, "Dicts cannot be sorted."),
                            (Role.USER, "That is wrong, use Python sorted."),
                            (Role.ASSISTANT, "You cannot."),
                            (Role.USER, "Still wrong.")], {1: 1, 3: 1}),
    ("bread", "bo", [(Role.USER, "A recipe for sourdough bread?"),
                     (Role.ASSISTANT, "- flour\n- water\n- salt"),
                     (Role.USER, "Great, how long do I bake the bread?")], {1: 4}),
]


def delete_tenant(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        for table in (MessageRow, FeedbackRow, PreferencePairRow, PersonaRow, SignalRow):
            session.execute(delete(table).where(table.tenant == TENANT))


def store_conversations(engine: Engine) -> None:
    """Each follow-up rated at stage raw and (unchanged) refined."""
    with Session(engine) as session, session.begin():
        for conversation, user, messages, levels in CONVERSATIONS:
            session.add_all(
                MessageRow(event_id=f"{conversation}-{turn}", tenant=TENANT, conversation_id=conversation,
                           turn_index=turn, role=role.value, content=content, user_id=user, language="en",
                           metadata_={}, created_at=func.now())
                for turn, (role, content) in enumerate(messages)
            )
            session.add_all(
                FeedbackRow(tenant=TENANT, conversation_id=conversation, user_id=user, query_turn=turn - 1,
                            response_turn=turn, followup_turn=turn + 1, level=level, confidence=0.9, reason="",
                            labeler_id="rules", labeler_version="1", stage=stage)
                for turn, level in levels.items() for stage in ("raw", REFINED)
            )
