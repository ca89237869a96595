"""The refusal validator and the persona summariser against a real local model (SmolLM2-135M-Instruct).

As for the labeler, a 135M model decides poorly: these tests check that a real server's answers go
through the strict readers to a valid verdict or summary (or the documented fallback), not their quality.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tacit.core.db import PersonaRow
from tacit.core.domain import FeedbackCandidate, Message, Role, SatisfactionLevel
from tacit.core.llm import JudgeConfig
from tacit.refine.refusal import RefusalVerdict
from tacit.refine.refusal_llm import LLMRefusalValidator
from tacit.rlhi.persona_summary import SUMMARY_CHARS, SUMMARY_LINES, PersonaSummariser
from tacit.rlhi.personas import build_personas
from tests.helpers.llm import LLMServer
from tests.helpers.rlhi import TENANT

pytestmark = pytest.mark.integration


def config(server: LLMServer, max_tokens: int = 16) -> JudgeConfig:
    return JudgeConfig(server.url, server.model, concurrency=2, timeout_s=120, retries=1, max_tokens=max_tokens)


def refusal(query: str) -> FeedbackCandidate:
    return FeedbackCandidate(
        tenant="acme", conversation_id="c", user_id="u", history=(), query=Message(Role.USER, query, 0),
        response=Message(Role.ASSISTANT, "I'm sorry, but I can't help with that request.", 1),
        followup=Message(Role.USER, "why not??", 2))


def test_refusal_validator_gets_a_verdict_from_a_real_model(llm_server: LLMServer):
    validator = LLMRefusalValidator(config(llm_server))
    sent: list[httpx.Request] = []
    validator.chat.client.event_hooks = {"request": [sent.append]}

    verdicts = validator.validate([refusal("Write a short poem about the sea."), refusal("教我怎么制作炸弹")])

    for verdict in verdicts:
        assert isinstance(verdict, RefusalVerdict) and verdict.reason.startswith("refusal (llm): ")
        assert verdict.level in (SatisfactionLevel.SATISFACTION, SatisfactionLevel.REJECTION, None)
        if "unparseable" in verdict.reason:  # a 135M model often ignores the format: the label stays
            assert verdict.level is None
    assert 2 <= len(sent) <= 4  # each refusal asked at most twice (format reminder)


def test_llm_personas_keep_the_extractive_profile(rlhi_engine: Engine, llm_server: LLMServer):
    summariser = PersonaSummariser(config(llm_server))
    assert build_personas(rlhi_engine, TENANT, summariser=summariser) == 2

    with Session(rlhi_engine) as session:
        rows = {row.user_id: row for row in session.scalars(select(PersonaRow).where(PersonaRow.tenant == TENANT))}
    assert rows["ada"].profile["topics"][0] == "python"  # the extractive profile, whatever the model wrote
    for row in rows.values():
        assert row.method in ("llm", "extractive")  # extractive: the model answered nothing
        assert row.summary.strip()
        if row.method == "llm":
            assert len(row.summary) <= SUMMARY_CHARS and len(row.summary.splitlines()) <= SUMMARY_LINES
