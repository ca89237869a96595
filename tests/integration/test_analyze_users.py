"""`tacit analyze users` on the session Postgres: a private tenant of hand-made labeled examples, tiny models."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tacit import cli
from tacit.core.cli import Wiring
from tacit.core.db import FeedbackRow, MessageRow, make_engine
from tacit.core.domain import REFINED
from tacit.core.endpoints import Endpoints
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings

pytestmark = pytest.mark.integration
TENANT = f"analyze-{uuid.uuid4().hex[:8]}"  # private to this run of this module
# Two users with many examples each (one of them can fill a subset alone) and forty with two each.
USERS = {"heavy-0": 40, "heavy-1": 40} | {f"light-{n}": 2 for n in range(40)}
LEVELS = (1, 2, 4, 5)
REPLIES = {1: "That is not something I will do.", 2: "The answer is 5.", 4: "Here is a longer, careful answer.",
           5: "Here is exactly the working code you asked for."}


def labeled_rows() -> Iterator[MessageRow | FeedbackRow]:
    """One rated reply per conversation, at the refined stage that the analysis reads."""
    for offset, (user, count) in enumerate(USERS.items()):
        for index in range(count):
            conversation, level = f"{user}-{index}", LEVELS[(offset + index) % len(LEVELS)]
            messages = (("user", f"Question {index} from {user}?"), ("assistant", REPLIES[level]), ("user", "ok"))
            for turn, (role, content) in enumerate(messages):
                yield MessageRow(event_id=f"{TENANT}-{conversation}-{turn}", tenant=TENANT,
                                 conversation_id=conversation, turn_index=turn, role=role, content=content,
                                 user_id=user, language="en", metadata_={}, created_at=func.now())
            yield FeedbackRow(tenant=TENANT, conversation_id=conversation, user_id=user, query_turn=0,
                              response_turn=1, followup_turn=2, level=level, confidence=0.9, reason="",
                              labeler_id="rules", labeler_version="1", stage=REFINED)


@pytest.fixture
def engine(embedded_stack: Endpoints) -> Iterator[Engine]:
    engine = make_engine(embedded_stack.database_url)
    with Session(engine) as session, session.begin():
        session.add_all(labeled_rows())
    yield engine
    with Session(engine) as session, session.begin():  # the session database is shared: leave it as found
        session.execute(delete(MessageRow).where(MessageRow.tenant == TENANT))
        session.execute(delete(FeedbackRow).where(FeedbackRow.tenant == TENANT))
    engine.dispose()


def test_analyze_users_prints_the_table_and_writes_csv_json_and_plot(
    engine: Engine, settings: TacitSettings, tmp_path: Path
) -> None:
    out = tmp_path / "analysis"
    result = CliRunner().invoke(
        cli.app,
        ["analyze", "users", "--tenant", TENANT, "--subset-size", "32", "--user-counts", "1,16", "--seeds", "2",
         "--steps", "1", "--out", str(out)],
        env={"COLUMNS": "200"}, obj=Wiring(settings.model_copy(update={"holdout_fraction": 0.2})),
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "42" in result.output and "160" in result.output  # users and examples of the distribution
    assert "user diversity" in result.output

    with (out / "user_diversity.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [(row["users"], row["examples"], row["runs"]) for row in rows] == [("1", "32", "2"), ("16", "32", "2")]
    for row in rows:
        assert 0.0 <= float(row["accuracy_mean"]) <= 1.0 and float(row["mae_mean"]) >= 0.0
        assert float(row["qwk_std"]) >= 0.0  # two seeds: a spread is measured
    report = json.loads((out / "user_diversity.json").read_text())
    assert [(run["users"], run["seed"]) for run in report["runs"]] == [(1, 0), (1, 1), (16, 0), (16, 1)]
    assert report["eval_users"] >= 1 and report["training_users"] + report["eval_users"] == len(USERS)
    assert (out / "user_diversity.png").read_bytes().startswith(b"\x89PNG")


def test_asking_for_more_than_the_store_holds_says_what_to_lower(
    engine: Engine, settings: TacitSettings, tmp_path: Path
) -> None:
    with pytest.raises(TacitError, match="lower --subset-size"):
        CliRunner().invoke(cli.app, ["analyze", "users", "--tenant", TENANT, "--subset-size", "1000",
                                     "--out", str(tmp_path)], catch_exceptions=False,
                           obj=Wiring(settings.model_copy(update={"holdout_fraction": 0.2})))
