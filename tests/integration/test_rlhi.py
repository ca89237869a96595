"""RLHI on the session Postgres: pairs and personas from hand-made conversations, exported for TRL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from datasets import load_dataset
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import FeedbackRow, MessageRow, PersonaRow, PreferencePairRow, make_engine
from tacit.core.domain import REFINED, Role
from tacit.core.endpoints import Endpoints
from tacit.rlhi.export import dpo_records, rm_records, write_records
from tacit.rlhi.pairs import build_pairs
from tacit.rlhi.personas import build_personas, refresh_due

pytestmark = pytest.mark.integration
TENANT = "rlhi-test"  # private to this module: the builds and exports below see only its rows

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
        for table in (MessageRow, FeedbackRow, PreferencePairRow, PersonaRow):
            session.execute(delete(table).where(table.tenant == TENANT))


@pytest.fixture
def engine(embedded_stack: Endpoints) -> Iterator[Engine]:
    """The store as the worker leaves it: each follow-up rated at stage raw and (unchanged) refined."""
    engine = make_engine(embedded_stack.database_url)
    delete_tenant(engine)
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
    yield engine
    delete_tenant(engine)  # the session database is shared: other modules count whole tables
    engine.dispose()


def test_pairs_are_built_once_with_provenance(engine: Engine):
    assert build_pairs(engine, TENANT) == 1
    assert build_pairs(engine, TENANT) == 1  # a rebuild rewrites the same row
    with Session(engine) as session:
        [pair] = session.scalars(select(PreferencePairRow).where(PreferencePairRow.tenant == TENANT)).all()
    assert (pair.conversation_id, pair.user_id, pair.source) == ("fix", "ada", "reattempt")
    assert (pair.rejected_turn, pair.feedback_turn, pair.chosen_turn) == (1, 2, 3)
    assert pair.prompt[-1] == {"role": "user", "content": "No, I asked for Python."}
    assert pair.chosen.startswith("```python") and pair.rejected.startswith("function")
    assert pair.provenance["rejected"]["level"] == 2 and pair.provenance["chosen"]["level"] == 5
    assert pair.provenance["chosen"]["labeler_id"] == "rules"


def test_personas_are_stored_for_each_user(engine: Engine):
    assert build_personas(engine, TENANT) == 2
    with Session(engine) as session:
        personas = {row.user_id: row for row in session.scalars(select(PersonaRow).where(PersonaRow.tenant == TENANT))}
    assert personas["ada"].profile["topics"][0] == "python"
    assert personas["ada"].profile["formats"] == ["code", "short answers"]
    assert personas["ada"].profile["corrections"] == ["python", "wrong"]
    assert personas["bo"].profile["formats"] == ["lists", "short answers"]
    assert personas["ada"].num_messages == 6 and personas["ada"].updated_at is not None


def test_personas_are_rebuilt_only_when_older_than_asked(engine: Engine):
    assert refresh_due(engine, TENANT, timedelta(hours=1))  # none yet
    build_personas(engine, TENANT)
    assert not refresh_due(engine, TENANT, timedelta(hours=1))
    assert refresh_due(engine, TENANT, timedelta(0))


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_the_dpo_export_loads_in_the_format_trl_expects(engine: Engine, tmp_path: Path, suffix: str):
    build_pairs(engine, TENANT)
    build_personas(engine, TENANT)
    out = tmp_path / f"pairs.{suffix}"
    write_records(dpo_records(engine, TENANT, persona=True), out)
    data = load_dataset("json" if suffix == "jsonl" else "parquet", data_files=str(out), split="train")
    assert data.column_names == ["prompt", "chosen", "rejected"]
    [row] = data
    assert row["prompt"][0]["role"] == "system" and "Topics: python" in row["prompt"][0]["content"]
    assert [message["role"] for message in row["prompt"][1:]] == ["user", "user"]
    assert row["chosen"] == [{"role": "assistant", "content": CONVERSATIONS[0][2][3][1]}]
    assert row["rejected"] == [{"role": "assistant", "content": CONVERSATIONS[0][2][1][1]}]


def test_the_rm_export_has_wildreward_texts_and_ordinal_classes(engine: Engine, tmp_path: Path):
    out = tmp_path / "rm.jsonl"
    write_records(rm_records(engine, TENANT), out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((record["level"], record["label"]) for record in records) == [(1, 0), (1, 0), (2, 1), (4, 2), (5, 3)]
    assert all("User Query:\n" in record["text"] and "Assistant Response:\n" in record["text"] for record in records)
