"""Decoder backbones (WildReward's layout), LoRA and gradient checkpointing, on tiny models and the bundled SmolLM2."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Qwen3Config, Qwen3Model

from tacit.core.domain import Message, Role
from tacit.core.examples import RewardExample
from tacit.core.settings import TacitSettings
from tacit.model.backbones import export_bundled_decoder
from tacit.model.scoring import RewardScorer
from tacit.trainer.train import TrainConfig, train_reward_model

TINY = TrainConfig(steps=4, batch_size=8, max_length=48, holdout_fraction=0.2, precision="float32",
                   head="independent", label_scheme="five")


def examples(count: int) -> list[RewardExample]:
    replies = {1: "I cannot help with that.", 3: "Here is an answer.", 5: "Here is a complete, working answer."}
    return [RewardExample("t", f"c{i}", f"u{i % 10}", (Message(Role.USER, "hi", 0),), "question",
                          replies[level], level) for i in range(count) for level in (1 + 2 * (i % 3),)]


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """A 1-layer Qwen3 (WildReward's family) with a tokenizer: the decoder code path in milliseconds."""
    directory = tmp_path_factory.mktemp("tiny-qwen3")
    torch.manual_seed(0)
    Qwen3Model(Qwen3Config(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16)).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(directory)
    return directory


def test_lora_trains_adapters_and_saves_a_merged_plain_checkpoint(tiny_decoder: Path, tmp_path: Path) -> None:
    train_reward_model(examples(60), replace(TINY, lora_rank=4), tiny_decoder, tmp_path)

    weights = load_file(tmp_path / "model.safetensors")
    assert not any("lora" in name for name in weights)  # merged: serving needs no peft
    base = load_file(tiny_decoder / "model.safetensors")
    changed = [name for name, tensor in base.items()
               if not torch.equal(tensor, weights[f"model.{name}"])]
    assert any("proj" in name for name in changed)  # the adapters moved the backbone's linear layers
    assert not any("norm" in name for name in changed)  # ... and nothing else of the backbone
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert model.config.pad_token_id is not None  # a decoder pools the last real token by it
    rewards = RewardScorer.load(tmp_path, TacitSettings(precision="float32")).score_texts(["a", "b c d"]).rewards
    assert all(1.0 <= reward <= 5.0 for reward in rewards)


def test_lora_keeps_the_coral_head_of_an_encoder(tiny_backbone: Path, tmp_path: Path) -> None:
    config = replace(TINY, lora_rank=4, head="coral", gradient_checkpointing=True)
    train_reward_model(examples(60), config, tiny_backbone, tmp_path)

    head = load_file(tmp_path / "model.safetensors")["classifier.weight"]
    assert torch.equal(head, head[:1].expand_as(head))  # one shared row: still CORAL after the merge


def test_bundled_smollm2_trains_as_a_reward_model(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    backbone = export_bundled_decoder(tmp_path / "smollm2")
    config = replace(TINY, steps=2, batch_size=4, max_length=32, lora_rank=8, gradient_checkpointing=True)

    train_reward_model(examples(40), config, backbone, tmp_path / "reward")

    scorer = RewardScorer.load(tmp_path / "reward", TacitSettings(precision="float32"))
    assert type(scorer.model).__name__ == "LlamaForSequenceClassification"
    assert len(scorer.score_texts(["User: hi\nAssistant: hello", "x"]).rewards) == 2
