"""A WildReward checkpoint serves unchanged: Qwen3 sequence classification with K-1 = 4 outputs, no
``tacit`` attribute in its config, a tokenizer without a pad token (as Qwen3's), read in the WildReward
layout. A tiny randomly initialised one stands in for the published 4B/8B models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForSequenceClassification

from tacit.core.settings import TacitSettings
from tacit.model.layouts import WILDREWARD_CRITERIA, WILDREWARD_OUTPUT, WILDREWARD_TASK, render
from tacit.model.schema import Turn
from tacit.model.scoring import RewardScorer
from tacit.serving.app import create_app
from tacit.serving.model import ServedModel
from tests.helpers.serving import CHAT, TEXTS, direct_rewards

SETTINGS = TacitSettings(serve_batch_size=3, precision="float32", max_length=512)


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """Every word of the texts, plus Qwen's end-of-text token and no pad token."""
    words = {word for text in texts for word in text.split()}
    vocabulary = {word: index for index, word in enumerate(["<unk>", "<|endoftext|>", *sorted(words)])}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<|endoftext|>",
                                   model_max_length=4096)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wildreward-qwen3")
    corpus = [*TEXTS, WILDREWARD_TASK, WILDREWARD_CRITERIA, WILDREWARD_OUTPUT, "Context (History): User Query:",
              "Assistant Response: Scoring criteria: (none)", *(str(value) for value in CHAT.values())]
    tokenizer = word_tokenizer(corpus)
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_labels=4, initializer_range=0.5,
    )
    Qwen3ForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_wildreward_qwen3_checkpoint_serves_unchanged(checkpoint: Path) -> None:
    rendered = render([Turn(**turn) for turn in CHAT["history"]], CHAT["query"], CHAT["response"], "wildreward")
    texts = [*TEXTS, rendered]
    scorer = RewardScorer.load(checkpoint, SETTINGS)

    with TestClient(create_app(ServedModel(scorer, None), SETTINGS)) as client:
        rewards = client.post("/get_reward", json={"query": texts}).json()["rewards"]
        scored = client.post("/v1/score", json={"items": [CHAT]}).json()
        info = client.get("/v1/model").json()

    expected = direct_rewards(checkpoint, texts)  # one text at a time: no pad id involved
    torch.testing.assert_close(torch.tensor(rewards), expected, rtol=0, atol=1e-5)
    assert scored["rewards"][0] == pytest.approx(expected[-1].item(), abs=1e-5)
    assert (info["layout"], info["levels"]) == ("wildreward", [1, 2, 3, 4, 5])
    assert len(set(rewards)) == len(rewards)  # a random model that ignored its input would pass the rest
