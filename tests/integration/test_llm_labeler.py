"""The LLM labeler against a real local model: SmolLM2-135M-Instruct served by `transformers serve`.

A 135M model judges poorly; these tests check the protocol (requests, strict parsing with its fallback,
caching, concurrency, errors), not the quality of its labels. The server is the session fixture
``llm_server`` (conftest.py).
"""

from __future__ import annotations

import httpx
import pytest

from tacit.core.domain import FeedbackCandidate, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.devstack.stack import free_port
from tacit.labels import get_labeler
from tests.helpers.llm import LLMServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judge(llm_server: LLMServer) -> TacitSettings:
    """Settings of a labeler that asks the served model."""
    return settings_for(llm_server.url, llm_server.model)


def candidate(query: str, response: str, followup: str) -> FeedbackCandidate:
    return FeedbackCandidate(tenant="acme", conversation_id="c", user_id="u", history=(),
                             query=Message(Role.USER, query, 0), response=Message(Role.ASSISTANT, response, 1),
                             followup=Message(Role.USER, followup, 2))


ITEMS = [
    candidate("Capital of France?", "Paris.", "Thank you, that's all I needed!"),
    candidate("Write hello world in Python.", "console.log('hello world')", "That's JavaScript, I asked for Python."),
    candidate("Capital of France?", "Paris.", "Thank you, that's all I needed!"),  # identical: asked once
]


def settings_for(url: str, model: str = "smollm2") -> TacitSettings:
    return TacitSettings(llm_url=url, llm_model=model, llm_concurrency=2, llm_max_tokens=16,
                         llm_retries=1, llm_timeout_s=60)


def test_real_model_labels_through_the_protocol(judge):
    labeler = get_labeler("llm", judge)
    sent: list[httpx.Request] = []
    labeler.judge.client.event_hooks = {"request": [sent.append]}

    labels = labeler.label(ITEMS)

    assert len(labels) == 3 and labels[0] == labels[2]
    for label in labels:
        assert label.labeler_id == "llm" and label.labeler_version.endswith(judge.llm_model[-40:])
        assert label.level in SatisfactionLevel
        assert label.reason.startswith("llm: ")
        if label.reason == "llm: unparseable judge answer":  # a 135M model often ignores the format
            assert (label.level, label.confidence) == (SatisfactionLevel.NEUTRAL, 0.1)
        else:
            assert label.confidence == 0.9
    assert 2 <= len(sent) <= 4  # two distinct items, each asked at most twice (format reminder)

    assert labeler.label(ITEMS) == labels
    assert 2 <= len(sent) <= 4  # the cache answered


def test_unreachable_judge_is_a_clear_error():
    labeler = get_labeler("llm", settings_for(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(TacitError, match="did not answer after 2 attempts.*TACIT_LLM_URL"):
        labeler.label(ITEMS[:1])
