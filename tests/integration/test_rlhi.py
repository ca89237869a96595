"""RLHI on the session Postgres: pairs and personas from hand-made conversations, exported for TRL.

The conversations are the store of the fixture ``rlhi_engine`` (conftest.py, tests.helpers.rlhi)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from datasets import load_dataset
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import PersonaRow, PreferencePairRow
from tacit.core.domain import SIGNAL, ChatEvent, Role
from tacit.core.fusion import FusionRule
from tacit.ingest.sink import PostgresSink, SinkBatch
from tacit.rlhi.export import dpo_records, rm_records, write_records
from tacit.rlhi.pairs import build_pairs
from tacit.rlhi.personas import build_personas, refresh_due
from tests.helpers.rlhi import CONVERSATIONS, TENANT

pytestmark = pytest.mark.integration


def test_pairs_are_built_once_with_provenance(rlhi_engine: Engine):
    assert build_pairs(rlhi_engine, TENANT) == 1
    assert build_pairs(rlhi_engine, TENANT) == 1  # a rebuild rewrites the same row
    with Session(rlhi_engine) as session:
        [pair] = session.scalars(select(PreferencePairRow).where(PreferencePairRow.tenant == TENANT)).all()
    assert (pair.conversation_id, pair.user_id, pair.source) == ("fix", "ada", "reattempt")
    assert (pair.rejected_turn, pair.feedback_turn, pair.chosen_turn) == (1, 2, 3)
    assert pair.prompt[-1] == {"role": "user", "content": "No, I asked for Python."}
    assert pair.chosen.startswith("```python") and pair.rejected.startswith("function")
    assert pair.provenance["rejected"]["level"] == 2 and pair.provenance["chosen"]["level"] == 5
    assert pair.provenance["chosen"]["labeler_id"] == "rules"


def test_a_regeneration_gives_a_pair_with_its_signal_as_provenance(rlhi_engine: Engine):
    texts = [(Role.USER, "Capital of Australia?"), (Role.ASSISTANT, "Sydney."), (Role.ASSISTANT, "Canberra.")]
    regenerate = SIGNAL.validate_python({"event_id": "r1", "tenant": TENANT, "conversation_id": "regen",
                                         "message_turn": 1, "signal": "regenerate"})
    PostgresSink(rlhi_engine).write(SinkBatch(signals=[regenerate], labeled=(), dead_letters=(), events=[
        ChatEvent(tenant=TENANT, conversation_id="regen", turn_index=turn, role=role, content=text, user_id="cy")
        for turn, (role, text) in enumerate(texts)]))

    assert build_pairs(rlhi_engine, TENANT) == 2  # the re-attempt of the shared store, and the regeneration
    with Session(rlhi_engine) as session:
        [pair] = session.scalars(select(PreferencePairRow).where(PreferencePairRow.source == "regeneration",
                                                                 PreferencePairRow.tenant == TENANT)).all()
    assert (pair.conversation_id, pair.rejected, pair.chosen, pair.user_id) == ("regen", "Sydney.", "Canberra.", "cy")
    assert pair.prompt == [{"role": "user", "content": "Capital of Australia?"}]
    assert pair.provenance["regenerate"]["event_id"] == "r1" and pair.provenance["replaced_by"] == [2]


def test_personas_are_stored_for_each_user(rlhi_engine: Engine):
    assert build_personas(rlhi_engine, TENANT) == 2
    with Session(rlhi_engine) as session:
        personas = {row.user_id: row for row in session.scalars(select(PersonaRow).where(PersonaRow.tenant == TENANT))}
    assert personas["ada"].profile["topics"][0] == "python"
    assert personas["ada"].profile["formats"] == ["code", "short answers"]
    assert personas["ada"].profile["corrections"] == ["python", "wrong"]
    assert personas["bo"].profile["formats"] == ["lists", "short answers"]
    assert personas["ada"].num_messages == 6 and personas["ada"].updated_at is not None


def test_personas_are_rebuilt_only_when_older_than_asked(rlhi_engine: Engine):
    assert refresh_due(rlhi_engine, TENANT, timedelta(hours=1))  # none yet
    build_personas(rlhi_engine, TENANT)
    assert not refresh_due(rlhi_engine, TENANT, timedelta(hours=1))
    assert refresh_due(rlhi_engine, TENANT, timedelta(0))


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_the_dpo_export_loads_in_the_format_trl_expects(rlhi_engine: Engine, tmp_path: Path, suffix: str):
    build_pairs(rlhi_engine, TENANT)
    build_personas(rlhi_engine, TENANT)
    out = tmp_path / f"pairs.{suffix}"
    write_records(dpo_records(rlhi_engine, TENANT, persona=True), out)
    data = load_dataset("json" if suffix == "jsonl" else "parquet", data_files=str(out), split="train")
    assert data.column_names == ["prompt", "chosen", "rejected"]
    [row] = data
    assert row["prompt"][0]["role"] == "system" and "Topics: python" in row["prompt"][0]["content"]
    assert [message["role"] for message in row["prompt"][1:]] == ["user", "user"]
    assert row["chosen"] == [{"role": "assistant", "content": CONVERSATIONS[0][2][3][1]}]
    assert row["rejected"] == [{"role": "assistant", "content": CONVERSATIONS[0][2][1][1]}]


def test_the_rm_export_has_wildreward_texts_and_ordinal_classes(rlhi_engine: Engine, tmp_path: Path):
    out = tmp_path / "rm.jsonl"
    write_records(rm_records(rlhi_engine, TENANT), out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((record["level"], record["label"]) for record in records) == [(1, 0), (1, 0), (2, 1), (4, 2), (5, 3)]
    assert all("User Query:\n" in record["text"] and "Assistant Response:\n" in record["text"] for record in records)


def test_the_rm_export_fuses_levels_with_signals_when_asked(rlhi_engine: Engine):
    thumbs_down = SIGNAL.validate_python({"tenant": TENANT, "conversation_id": "bread", "message_turn": 1,
                                          "signal": "thumbs", "up": False})
    PostgresSink(rlhi_engine).write(SinkBatch(events=(), labeled=(), dead_letters=(), signals=[thumbs_down]))

    plain = sorted(record["level"] for record in rm_records(rlhi_engine, TENANT))
    fused = sorted(record["level"] for record in rm_records(rlhi_engine, TENANT, fusion=FusionRule()))
    assert (plain, fused) == ([1, 1, 2, 4, 5], [1, 1, 2, 2, 5])  # bread's 4 under a thumbs down
