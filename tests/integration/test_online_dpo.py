"""Pairs ranked by a real scoring service, and one small online-DPO run, through the CLI on the session stack.

The service serves a tiny random BERT reward model registered as a model version, so that its replies
carry a version number; its large random weights give clearly different rewards to different replies.
The policy is the bundled SmolLM2-135M-Instruct, trained for two DPO steps on CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from tacit import cli
from tacit.core.cli import Wiring
from tacit.core.db import MessageRow, ModelStatus, ModelVersion, PreferencePairRow, make_engine
from tacit.core.domain import Role
from tacit.core.endpoints import Endpoints
from tacit.core.settings import TacitSettings
from tacit.serving.server import BackgroundServer, start_in_background
from tests.helpers.serving import TACIT_SPEC, save_tiny_checkpoint

pytestmark = pytest.mark.integration
TENANT = "ranking-test"  # private to this module
QUESTION = "How do I reverse a list in Python?"
CONVERSATIONS = {  # the same first question in two conversations (one asked it with other spacing), one other
    "short": [QUESTION, "Use reversed()."],
    "long": ["How do I  reverse a list in python?", "Call my_list.reverse(), or use my_list[::-1] for a copy."],
    "other": ["Name a fruit.", "Apple."],
}


def delete_tenant(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        for table in (MessageRow, PreferencePairRow):
            session.execute(delete(table).where(table.tenant == TENANT))


@pytest.fixture(scope="module")
def engine(embedded_stack: Endpoints) -> Iterator[Engine]:
    engine = make_engine(embedded_stack.database_url)
    delete_tenant(engine)
    with Session(engine) as session, session.begin():
        session.add_all(
            MessageRow(event_id=f"{TENANT}-{conversation}-{turn}", tenant=TENANT, conversation_id=conversation,
                       turn_index=turn, role=(Role.USER if turn % 2 == 0 else Role.ASSISTANT).value,
                       content=text, user_id=conversation, metadata_={}, created_at=func.now())
            for conversation, texts in CONVERSATIONS.items() for turn, text in enumerate(texts)
        )
    yield engine
    delete_tenant(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def service(settings: TacitSettings, engine: Engine, tmp_path_factory) -> Iterator[tuple[BackgroundServer, int]]:
    """The service pinned to a registered (never promoted) version, removed again afterwards."""
    checkpoint = save_tiny_checkpoint(tmp_path_factory.mktemp("reward-model"), 3, TACIT_SPEC)
    with Session(engine) as session, session.begin():
        row = ModelVersion(base_model="tiny-bert", artifact_uri=str(checkpoint),
                           status=ModelStatus.CANDIDATE.value, metrics={})
        session.add(row)
        session.flush()
        version = row.id
    try:
        with start_in_background(settings.model_copy(update={"precision": "float32"}), version=version) as server:
            yield server, version
    finally:
        with engine.begin() as connection:
            connection.execute(delete(ModelVersion).where(ModelVersion.id == version))


@pytest.fixture
def run_cli(settings: TacitSettings):
    def run(*arguments: str) -> str:
        result = CliRunner().invoke(cli.app, list(arguments), obj=Wiring(settings))
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    return run


def pairs(engine: Engine, source: str) -> list[PreferencePairRow]:
    with Session(engine) as session:
        return list(session.scalars(select(PreferencePairRow).where(PreferencePairRow.tenant == TENANT,
                                                                   PreferencePairRow.source == source)))


def test_replies_to_the_same_prompt_are_ranked_by_the_service_once(engine: Engine, service, run_cli):
    server, version = service
    for _ in range(2):  # a re-run rewrites the same row
        output = run_cli("pairs", "rank", "--tenant", TENANT, "--margin", "0", "--url", server.url)
        assert "1 prompts with several replies" in output and "1 reward-model pairs stored" in output
    [pair] = pairs(engine, "reward_model")
    # the wording of the conversation read first (by id): "long"
    assert pair.prompt == [{"role": "user", "content": CONVERSATIONS["long"][0]}]
    assert {pair.chosen, pair.rejected} == {CONVERSATIONS["short"][1], CONVERSATIONS["long"][1]}
    assert pair.user_id is None and pair.conversation_id.startswith("prompt:")
    provenance = pair.provenance
    assert provenance["model_version"] == version and provenance["candidates"] == 2
    assert provenance["chosen"]["reward"] > provenance["rejected"]["reward"]
    assert {provenance["chosen"]["conversation_id"], provenance["rejected"]["conversation_id"]} == {"short", "long"}
    assert provenance["chosen"]["turn"] == provenance["rejected"]["turn"] == 1


def test_online_dpo_trains_the_policy_on_pairs_it_stores(engine: Engine, service, run_cli, tmp_path: Path):
    server, version = service
    out = tmp_path / "policy"
    output = run_cli("dpo", "online", "--tenant", TENANT, "--out", str(out), "--candidates", "3",
                     "--max-new-tokens", "16", "--steps", "2", "--batch-size", "1", "--margin", "0",
                     "--url", server.url)
    assert f"reward model version {version}" in output and "online-DPO pairs stored" in output
    stored = pairs(engine, "online_dpo")
    assert 1 <= len(stored) <= 2  # one per stored prompt whose samples did not all tie
    for pair in stored:
        assert pair.chosen != pair.rejected
        assert pair.provenance["model_version"] == version
        assert pair.provenance["chosen"]["policy"].startswith("SmolLM2-135M-Instruct")
        assert pair.provenance["chosen"]["reward"] >= pair.provenance["rejected"]["reward"]
    policy = AutoModelForCausalLM.from_pretrained(out)
    assert policy.config.architectures == ["LlamaForCausalLM"]
    assert (out / "tokenizer_config.json").is_file()
