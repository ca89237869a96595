"""The scoring service on a tiny random BERT: the API, the scorer's numbers, the background server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tacit.core.domain import MAX_CONTENT_CHARS
from tacit.model.client import ScoringClient, ScoringError
from tacit.model.layouts import Layout, render
from tacit.model.schema import MAX_ITEMS, ChatItem, TextItem, Turn
from tacit.model.scoring import CheckpointError, RewardScorer
from tacit.serving.app import comparison, create_app
from tacit.serving.model import ServedModel, load_scorer
from tacit.serving.server import start_in_background
from tests.helpers.serving import CHAT, SETTINGS, TACIT_SPEC, TEXTS, direct_rewards, save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tacit-checkpoint"), 3, TACIT_SPEC)


@pytest.fixture(scope="module")
def wildreward_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("wildreward-checkpoint"), 4, None)


@pytest.fixture(scope="module")
def scorer(checkpoint: Path) -> RewardScorer:
    return RewardScorer.load(checkpoint, SETTINGS)


@pytest.fixture(scope="module")
def client(scorer: RewardScorer):
    with TestClient(create_app(ServedModel(scorer, 7), SETTINGS)) as client:
        yield client


def render_chat(layout: Layout) -> str:
    return render([Turn(**turn) for turn in CHAT["history"]], CHAT["query"], CHAT["response"], layout)


def test_get_reward_matches_plain_transformers(client: TestClient, checkpoint: Path) -> None:
    response = client.post("/get_reward", json={"query": TEXTS})

    assert response.status_code == 200
    rewards = torch.tensor(response.json()["rewards"])
    torch.testing.assert_close(rewards, direct_rewards(checkpoint, TEXTS), rtol=0, atol=1e-5)


def test_get_reward_ignores_the_extra_keys_openrlhf_sends(client: TestClient) -> None:
    response = client.post("/get_reward", json={"query": TEXTS[:2], "prompts": ["p", "p"], "labels": [0, 0]})

    assert response.status_code == 200
    assert len(response.json()["rewards"]) == 2


def test_score_renders_chat_items_with_the_checkpoint_layout(client: TestClient) -> None:
    rendered = render_chat("compact")

    body = client.post("/v1/score", json={"items": [CHAT, {"text": rendered}, {"text": "no"}]}).json()

    assert body["levels"] == [1, 2, 4, 5]
    assert body["model_version"] == 7
    chat_reward, text_reward, _other_reward = body["rewards"]
    assert chat_reward == pytest.approx(text_reward, abs=1e-6)
    assert all(1 <= reward <= 4 for reward in body["rewards"])
    assert all(len(row) == 4 and min(row) >= 0 for row in body["level_probabilities"])


def test_model_runs_off_the_event_loop(client: TestClient, scorer: RewardScorer, monkeypatch) -> None:
    threads = []
    score_encoded = scorer.score_encoded

    def recording(features):
        threads.append(threading.current_thread().name)
        return score_encoded(features)

    monkeypatch.setattr(scorer, "score_encoded", recording)
    client.post("/v1/score", json={"items": [{"text": "hello"}]})
    client.post("/get_reward", json={"query": ["hello"]})

    assert len(threads) == 2
    assert all(name.startswith("tacit-scorer") for name in threads)


def test_truncation_keeps_the_end_of_the_text(scorer: RewardScorer) -> None:
    ending = " Assistant: the answer is 42."
    long_text = "filler " * 200 + ending
    longer_text = "other words " * 100 + long_text

    rewards = scorer.score_texts([long_text, longer_text]).rewards

    assert rewards[0] == pytest.approx(rewards[1], abs=1e-6)


def test_model_info(client: TestClient, checkpoint: Path) -> None:
    info = client.get("/v1/model").json()

    assert info == {
        "model_version": 7,
        "tenant": None,
        "following_champion": False,
        "last_rejected": None,
        "checkpoint": checkpoint.name,
        "layout": "compact",
        "levels": [1, 2, 4, 5],
        "max_length": 64,
        "device": "cpu",
        "heads": ["satisfaction"],
        "reward_head": "satisfaction",
    }
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/score", {"items": []}, "items"),
        ("/v1/score", {"items": [{"text": "a"}] * (MAX_ITEMS + 1)}, "items"),
        ("/v1/score", {"items": [{"query": "q"}]}, "response"),
        ("/v1/score", {"items": [{"text": "x" * (MAX_CONTENT_CHARS + 1)}]}, "text"),
        ("/v1/score", {"items": [{"text": "a", "query": "b"}]}, "query"),
        ("/v1/score", {"items": [{**CHAT, "history": [{"role": "robot", "content": "beep"}]}]}, "role"),
        ("/get_reward", {"query": "not a list"}, "query"),
        ("/get_reward", {"texts": ["a"]}, "query"),
    ],
)
def test_bad_input_is_a_422_that_names_the_field(
    client: TestClient, path: str, body: dict, field: str
) -> None:
    response = client.post(path, json=body)

    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])


def test_checkpoint_without_tacit_attribute_serves_as_wildreward(wildreward_checkpoint: Path) -> None:
    scorer = RewardScorer.load(wildreward_checkpoint, SETTINGS)
    rendered = render_chat("wildreward")

    with TestClient(create_app(ServedModel(scorer, None), SETTINGS)) as client:
        body = client.post("/v1/score", json={"items": [CHAT, {"text": rendered}]}).json()
        info = client.get("/v1/model").json()

    assert (info["layout"], info["levels"]) == ("wildreward", [1, 2, 3, 4, 5])
    assert body["levels"] == [1, 2, 3, 4, 5]
    assert body["model_version"] is None
    assert body["rewards"][0] == pytest.approx(body["rewards"][1], abs=1e-6)
    assert all(1 <= reward <= 5 for reward in body["rewards"])


def test_background_server_answers_the_client_and_stops(checkpoint: Path) -> None:
    threads_before = set(threading.enumerate())
    with start_in_background(SETTINGS, checkpoint=checkpoint) as server, ScoringClient(server.url) as scoring:
        scored = scoring.score([ChatItem.model_validate(CHAT), TextItem(text="thanks!")])
        rewards = scoring.get_reward(["thanks!"])
        with pytest.raises(ScoringError, match="query: List should have at most"):
            scoring.get_reward(["a"] * (MAX_ITEMS + 1))

    assert scored.model_version is None
    assert scored.rewards[1] == pytest.approx(rewards[0], abs=1e-6)
    assert set(threading.enumerate()) <= threads_before
    with ScoringClient(server.url, connect_wait_s=0) as scoring, pytest.raises(ScoringError, match="reach"):
        scoring.get_reward(["anyone there?"])


def long_conversation(turns: int) -> dict:
    history = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i} " + "words " * 8} for i in range(turns)]
    return {**CHAT, "history": history}


def test_oversize_conversations_lose_their_oldest_turns_and_say_so(client: TestClient) -> None:
    item = long_conversation(12)

    body = client.post("/v1/score", json={"items": [{"text": "ok"}, item]}).json()

    [truncation] = body["truncated"]
    dropped = truncation["history_turns_dropped"]
    assert truncation == {"index": 1, "history_turns_dropped": dropped, "tokens_dropped": 0}
    assert 0 < dropped < 12
    kept = client.post("/v1/score", json={"items": [{**item, "history": item["history"][dropped:]}]}).json()
    assert kept["truncated"] == []
    assert kept["rewards"][0] == pytest.approx(body["rewards"][1], abs=1e-6)


def test_a_query_too_long_is_cut_from_the_left_but_the_response_is_kept(client: TestClient) -> None:
    item = {**long_conversation(2), "query": "please " * 100}

    body = client.post("/v1/score", json={"items": [item]}).json()

    assert body["truncated"][0]["history_turns_dropped"] == 2
    assert body["truncated"][0]["tokens_dropped"] > 0


def test_a_response_that_cannot_fit_is_refused(client: TestClient) -> None:
    item = {**CHAT, "response": "long " * 100}

    response = client.post("/v1/score", json={"items": [{"text": "ok"}, item]})

    assert response.status_code == 422
    assert "items.1.response" in response.json()["detail"]


def test_get_reward_names_the_truncated_texts_in_a_header(client: TestClient) -> None:
    response = client.post("/get_reward", json={"query": ["short", "long " * 100]})

    assert response.headers["x-tacit-truncated"] == "1"
    assert "x-tacit-truncated" not in client.post("/get_reward", json={"query": ["short"]}).headers


def test_compare_says_which_reply_is_better_and_how_likely(client: TestClient) -> None:
    good, bad = {"text": TEXTS[0]}, {"text": TEXTS[3]}

    forward = client.post("/v1/compare", json={"pairs": [{"a": good, "b": bad}]}).json()
    backward = client.post("/v1/compare", json={"pairs": [{"a": bad, "b": good}]}).json()

    [one], [other] = forward["comparisons"], backward["comparisons"]
    assert one["probability"] == pytest.approx(other["probability"], abs=1e-6)
    assert 0.5 <= one["probability"] <= 1
    assert {one["better"], other["better"]} == {"a", "b"}
    assert (one["better"] == "a") == (one["reward_a"] > one["reward_b"])
    assert forward["model_version"] == 7


def test_comparison_of_level_distributions() -> None:
    surely_better = comparison(4.0, 1.0, [0, 0, 0, 1], [1, 0, 0, 0])
    coin = comparison(2.5, 2.5, [0.5, 0, 0, 0.5], [0.5, 0, 0, 0.5])

    assert (surely_better.better, surely_better.probability) == ("a", 1.0)
    assert coin.probability == pytest.approx(0.5)


def test_ready_and_metrics(client: TestClient) -> None:
    client.post("/get_reward", json={"query": TEXTS})

    assert client.get("/readyz").json() == {"status": "ready", "model_version": 7}
    exposition = client.get("/metrics").text
    assert 'tacit_request_seconds_count{endpoint="/get_reward"}' in exposition
    scored = next(line for line in exposition.splitlines() if line.startswith("tacit_scored_texts_total"))
    assert float(scored.split()[-1]) >= len(TEXTS)
    assert "tacit_model_version 7.0" in exposition


def test_a_lone_surrogate_is_refused_not_a_server_error(client: TestClient) -> None:
    body = '{"query": ["fine", "broken \\ud800 text"]}'

    response = client.post("/get_reward", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "query", 1]


def test_a_refusal_does_not_echo_a_large_input(client: TestClient) -> None:
    too_long = "x" * 250_000  # over the per-text limit: the error is about this very value

    response = client.post("/v1/score", json={"items": [{"text": too_long}]})

    assert response.status_code == 422
    assert len(response.content) < 2_000


# ---------------------------------------------------------------------------------------------- signal heads


@pytest.fixture(scope="module")
def heads_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = {**TACIT_SPEC, "heads": ["thumbs_up", "continue"]}  # 3 thresholds, then one logit per head
    return save_tiny_checkpoint(tmp_path_factory.mktemp("heads-checkpoint"), 5, spec)


def direct_logits(checkpoint: Path, texts: list[str]) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        return torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in texts])


@pytest.mark.parametrize(("reward_head", "column"), [("satisfaction", None), ("thumbs_up", 3), ("continue", 4)])
def test_score_returns_every_head_and_get_reward_the_configured_one(
    heads_checkpoint: Path, reward_head: str, column: int | None
) -> None:
    settings = SETTINGS.model_copy(update={"serve_reward_head": reward_head})
    logits = direct_logits(heads_checkpoint, TEXTS)
    with TestClient(create_app(ServedModel(load_scorer(heads_checkpoint, settings), 3), settings)) as client:
        body = client.post("/v1/score", json={"items": [{"text": text} for text in TEXTS]}).json()
        rewards = client.post("/get_reward", json={"query": TEXTS}).json()["rewards"]
        info = client.get("/v1/model").json()

    assert list(body["heads"]) == ["satisfaction", "thumbs_up", "continue"]
    assert body["heads"]["satisfaction"] == body["rewards"]
    torch.testing.assert_close(torch.tensor(body["rewards"]), 1 + torch.sigmoid(logits[:, :3]).sum(-1),
                               rtol=0, atol=1e-5)
    for name, index in (("thumbs_up", 3), ("continue", 4)):
        torch.testing.assert_close(torch.tensor(body["heads"][name]), torch.sigmoid(logits[:, index]),
                                   rtol=0, atol=1e-5)
    assert rewards == pytest.approx(body["heads"][reward_head], abs=1e-6)
    assert all(len(row) == 4 for row in body["level_probabilities"])  # the thresholds only
    assert (info["heads"], info["reward_head"]) == (["satisfaction", "thumbs_up", "continue"], reward_head)
    assert column is None or rewards != pytest.approx(body["rewards"], abs=1e-3)


def test_a_checkpoint_without_the_served_reward_head_is_refused(checkpoint: Path) -> None:
    settings = SETTINGS.model_copy(update={"serve_reward_head": "thumbs_up"})

    with pytest.raises(CheckpointError, match="TACIT_SERVE_REWARD_HEAD is 'thumbs_up'.*satisfaction"):
        load_scorer(checkpoint, settings)
