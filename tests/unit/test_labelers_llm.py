"""The LLM labeler's protocol against a scripted OpenAI-compatible server (httpx.MockTransport)."""

import httpx
import pytest
from prometheus_client import generate_latest

from tacit.core import llm as chat
from tacit.core.domain import FeedbackCandidate, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.ingest.metrics import WorkerMetrics
from tacit.labels import llm
from tacit.labels.llm import JudgeConfig, LLMLabeler
from tacit.labels.prompt import SYSTEM, parse, render
from tests.helpers.llm import Server, completion, connect


def candidate(followup: str) -> FeedbackCandidate:
    return FeedbackCandidate(
        tenant="acme", conversation_id="c1", user_id="u1", history=(),
        query=Message(Role.USER, "How do I reverse a list in Python?", 0),
        response=Message(Role.ASSISTANT, "Use reversed(items) or items[::-1].", 1),
        followup=Message(Role.USER, followup, 2),
    )


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(chat, "BACKOFF_S", 0.001)


def judge(server: Server, **config) -> LLMLabeler:
    return connect(LLMLabeler, server, **config)


def test_parses_the_level_and_reason_and_sends_the_prompt():
    server = Server(completion("[[5]] The user says thanks."))
    [label] = judge(server).label([candidate("Thanks, that solved it!")])
    assert (label.level, label.reason, label.labeler_id) == (SatisfactionLevel.SATISFACTION,
                                                               "llm: The user says thanks.", "llm")
    assert label.confidence == llm.JUDGED_CONFIDENCE
    request = server.requests[0]
    assert request["model"] == "judge-model" and request["temperature"] == 0
    assert request["messages"][0] == {"role": "system", "content": SYSTEM}
    assert "User follow-up:\nThanks, that solved it!" in request["messages"][1]["content"]


@pytest.mark.parametrize("answer, level", [("[[2]] wrong language", 2), ("  [[3]]\nneutral", 3), ("[[4]]", 4)])
def test_strict_format_accepted(answer, level):
    assert parse(answer).level == level


@pytest.mark.parametrize("answer", ["Rating: 5", "I think [[5]]", "[[6]] too high", "[5] thanks", "", "[[ 5 ]]"])
def test_anything_else_is_unparseable(answer):
    assert parse(answer) is None


def test_unparseable_answer_is_asked_again_with_a_reminder():
    server = Server(completion("The user seems happy."), completion("[[5]] thanks"))
    [label] = judge(server).label([candidate("Thanks!")])
    assert label.level == SatisfactionLevel.SATISFACTION
    retry = server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "The user seems happy."}
    assert "[[n]]" in retry[-1]["content"]


def test_two_unparseable_answers_give_a_low_confidence_neutral():
    server = Server(completion("The user seems happy."))
    [label] = judge(server).label([candidate("Thanks!")])
    assert (label.level, label.reason) == (SatisfactionLevel.NEUTRAL, "llm: unparseable judge answer")
    assert label.confidence == llm.UNPARSEABLE_CONFIDENCE
    assert len(server.requests) == 2


def test_answers_unparseable_after_the_reminder_are_counted_for_the_worker_metrics():
    failures = chat.UNPARSEABLE_ANSWERS.labels(question="judgement")
    before = failures._value.get()
    judge(Server(completion("The user seems happy."))).label([candidate("Thanks!")])
    judge(Server(completion("The user seems happy."), completion("[[5]] thanks"))).label([candidate("Thanks!")])
    assert failures._value.get() == before + 1  # the second answer parsed after the reminder
    exposition = generate_latest(WorkerMetrics().registry).decode()
    assert 'tacit_llm_unparseable_answers_total{question="judgement"}' in exposition


def test_overload_and_transport_errors_are_retried():
    server = Server(completion("busy", 503), httpx.ConnectError("refused"), completion("slow down", 429),
                    completion("[[2]] points out a bug"))
    [label] = judge(server, retries=3).label([candidate("That code crashes.")])
    assert label.level == SatisfactionLevel.ERROR_CORRECTION
    assert len(server.requests) == 4


def test_unreachable_endpoint_names_the_setting():
    server = Server(httpx.ConnectError("connection refused"))
    with pytest.raises(TacitError, match="TACIT_LLM_URL"):
        judge(server, retries=2).label([candidate("Thanks!")])
    assert len(server.requests) == 3


def test_refused_request_names_model_and_key():
    with pytest.raises(TacitError, match="TACIT_LLM_MODEL and TACIT_LLM_API_KEY"):
        judge(Server(httpx.Response(401, text="bad key"))).label([candidate("Thanks!")])


def test_identical_items_are_asked_once_within_and_across_batches():
    server = Server(completion("[[5]] thanks"))
    labeler = judge(server)
    labels = labeler.label([candidate("Thanks!"), candidate("Thanks!")]) + labeler.label([candidate("Thanks!")])
    assert [label.level for label in labels] == [SatisfactionLevel.SATISFACTION] * 3
    assert len(server.requests) == 1
    labeler.label([candidate("Something else")])
    assert len(server.requests) == 2


def test_requests_in_flight_stay_within_the_concurrency_limit():
    server = Server(completion("[[3]] neutral"), delay=0.05)
    labels = judge(server, concurrency=3).label([candidate(f"question {i}") for i in range(12)])
    assert len(labels) == 12 and len(server.requests) == 12
    assert 1 < server.most_in_flight <= 3


def test_unconfigured_judge_says_what_to_set():
    with pytest.raises(TacitError, match="TACIT_LLM_URL.*TACIT_LLM_MODEL"):
        JudgeConfig.from_settings(TacitSettings(llm_url=None, llm_model=None))


def test_long_texts_are_cut_where_feedback_is():
    long = candidate("Thanks! " + "x" * 5000)
    prompt = render(long)
    assert "Thanks!" in prompt and len(prompt) < 5000
